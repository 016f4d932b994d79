"""Clones a repository with Dulwich and prints JSON: the HEAD commit id.

Usage: dulwich_clone.py URL DIR
- HTTPS: user and password come from MF_GIT_USER / MF_GIT_PASSWORD (never argv); the CA bundle to trust from
  MF_CA_FILE (Dulwich's http.sslCAInfo).
- SSH: Dulwich runs the command in GIT_SSH_COMMAND (OpenSSH here), as git does, and speaks the git protocol
  over it itself.
Run with Debian's /usr/bin/python3 (package python3-dulwich).
"""
import json
import os
import sys

import dulwich
from dulwich import porcelain
from dulwich.config import ConfigDict


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: dulwich_clone.py URL DIR")
    url, target = sys.argv[1], sys.argv[2]
    config = ConfigDict()
    if os.environ.get("MF_CA_FILE"):
        config.set((b"http",), b"sslCAInfo", os.environ["MF_CA_FILE"].encode())
    kwargs = {}
    if os.environ.get("MF_GIT_USER"):
        kwargs = {"username": os.environ["MF_GIT_USER"], "password": os.environ.get("MF_GIT_PASSWORD", "")}
    repo = porcelain.clone(url, target, config=config, errstream=sys.stderr.buffer, **kwargs)
    print(json.dumps({"head": repo.head().decode(), "dulwich": ".".join(map(str, dulwich.__version__))}))


if __name__ == "__main__":
    main()
