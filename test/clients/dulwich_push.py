"""Pushes refs/heads/main of the repository in DIR to URL with Dulwich: exit 0 on success; exit 1 with Dulwich's
error message on stderr.

Usage: dulwich_push.py URL DIR
HTTPS only: user and password come from MF_GIT_USER / MF_GIT_PASSWORD (never argv); the CA bundle from MF_CA_FILE.
Run with Debian's /usr/bin/python3 (package python3-dulwich).
"""
import os
import sys

from dulwich import porcelain
from dulwich.client import default_urllib3_manager
from dulwich.config import ConfigDict
from dulwich.errors import GitProtocolError, HangupException


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: dulwich_push.py URL DIR")
    url, path = sys.argv[1], sys.argv[2]
    config = ConfigDict()
    if os.environ.get("MF_CA_FILE"):
        config.set((b"http",), b"sslCAInfo", os.environ["MF_CA_FILE"].encode())
    try:
        # push() reads the repository's own config; the CA goes in through the connection pool instead.
        porcelain.push(path, url, b"refs/heads/main:refs/heads/from-dulwich", errstream=sys.stderr.buffer,
                       username=os.environ.get("MF_GIT_USER"), password=os.environ.get("MF_GIT_PASSWORD"),
                       pool_manager=default_urllib3_manager(config))
    except (GitProtocolError, HangupException, Exception) as err:  # noqa: B014 - show whatever Dulwich raises
        sys.stderr.write("%s: %s\n" % (type(err).__name__, err))
        sys.exit(1)


if __name__ == "__main__":
    main()
