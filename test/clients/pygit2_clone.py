"""Clones a repository with pygit2 (libgit2; SSH through libssh2) and prints JSON: the HEAD commit id and
whether libgit2 found the server's host key in known_hosts.

Usage: pygit2_clone.py URL DIR [PRIVATE_KEY]
- HTTPS: user and password come from MF_GIT_USER / MF_GIT_PASSWORD (never argv); the CA bundle to trust from
  MF_CA_FILE.
- SSH: PRIVATE_KEY (and PRIVATE_KEY.pub) authenticate; the host key must be in $HOME/.ssh/known_hosts, which
  libgit2 reads itself: a host key it cannot verify ends the clone.
Run with Debian's /usr/bin/python3 (package python3-pygit2).
"""
import json
import os
import sys

import pygit2


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: pygit2_clone.py URL DIR [PRIVATE_KEY]")
    url, target = sys.argv[1], sys.argv[2]
    key = sys.argv[3] if len(sys.argv) == 4 else None
    if os.environ.get("MF_CA_FILE"):
        pygit2.settings.set_ssl_cert_locations(os.environ["MF_CA_FILE"], None)
    host_key_checked = {}

    class Callbacks(pygit2.RemoteCallbacks):
        def credentials(self, url, username_from_url, allowed_types):
            if key and allowed_types & pygit2.GIT_CREDENTIAL_SSH_KEY:
                return pygit2.Keypair(username_from_url or "git", key + ".pub", key, "")
            if allowed_types & pygit2.GIT_CREDENTIAL_USERPASS_PLAINTEXT and os.environ.get("MF_GIT_USER"):
                return pygit2.UserPass(os.environ["MF_GIT_USER"], os.environ.get("MF_GIT_PASSWORD", ""))
            raise pygit2.GitError("no credentials for %s" % url)

        def certificate_check(self, certificate, valid, host):
            # pygit2 does not hand over the certificate or host key itself; `valid` is libgit2's own verdict
            # (the CA for HTTPS, known_hosts for SSH). Refuse what it could not verify.
            host_key_checked["valid"] = bool(valid)
            return bool(valid)

    repo = pygit2.clone_repository(url, target, callbacks=Callbacks())
    print(json.dumps({
        "head": str(repo.head.target),
        "verified": host_key_checked.get("valid"),
        "pygit2": pygit2.__version__,
        "libgit2": pygit2.LIBGIT2_VERSION,
    }))


if __name__ == "__main__":
    main()
