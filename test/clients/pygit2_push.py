"""Pushes refs/heads/main of the repository in DIR to URL with pygit2 (libgit2) and prints what libgit2 reports:
exit 0 on success; exit 1 with libgit2's error message on stderr.

Usage: pygit2_push.py URL DIR
HTTPS only: user and password come from MF_GIT_USER / MF_GIT_PASSWORD (never argv); the CA bundle from MF_CA_FILE.
Run with Debian's /usr/bin/python3 (package python3-pygit2).
"""
import os
import sys

import pygit2


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: pygit2_push.py URL DIR")
    url, path = sys.argv[1], sys.argv[2]
    if os.environ.get("MF_CA_FILE"):
        pygit2.settings.set_ssl_cert_locations(os.environ["MF_CA_FILE"], None)

    class Callbacks(pygit2.RemoteCallbacks):
        def credentials(self, url, username_from_url, allowed_types):
            return pygit2.UserPass(os.environ.get("MF_GIT_USER", ""), os.environ.get("MF_GIT_PASSWORD", ""))

        def certificate_check(self, certificate, valid, host):
            return bool(valid)

    repo = pygit2.Repository(path)
    remote = repo.remotes.create("target", url)
    try:
        remote.push(["refs/heads/main:refs/heads/from-libgit2"], callbacks=Callbacks())
    except pygit2.GitError as err:
        sys.stderr.write("%s\n" % err)
        sys.exit(1)


if __name__ == "__main__":
    main()
