// Clone URLs a mirror hands out: its own (in REST answers, so clients stay near the mirror) and the primary's
// (where pushes go), in the shapes the primary uses: https://HOST/scm/proj/repo.git, ssh://git@HOST:PORT/proj/repo.git.
import type { Urls } from '../server/context.js';

/** `user`: the login name (ssh.user of the server the URL points at); "git" when not given. */
type SshBase = { host: string; port: number; user?: string } | undefined;

function sshUrl(base: NonNullable<SshBase>, key: string, slug: string): string {
  return `ssh://${base.user ?? 'git'}@${base.host.includes(':') ? `[${base.host}]` : base.host}:${base.port}/${key.toLowerCase()}/${slug}.git`;
}

/** The mirror's own URLs; the SSH base is read on each call (the port is known only once SSH listens). */
export function mirrorUrls(baseUrl: string, sshBase: () => SshBase): Urls {
  return {
    base: () => baseUrl,
    httpClone: (key, slug) => `${baseUrl}/scm/${key.toLowerCase()}/${slug}.git`,
    sshClone: (key, slug) => {
      const base = sshBase();
      return base ? sshUrl(base, key, slug) : undefined;
    },
  };
}

/** The primary's clone URLs (SSH once preflight has learned where the primary's SSH server is). */
export function primaryCloneUrls(upstreamUrl: string, sshBase: () => SshBase) {
  return (key: string, slug: string): Array<{ href: string; name: string }> => {
    const base = sshBase();
    return [{ href: `${upstreamUrl}/scm/${key.toLowerCase()}/${slug}.git`, name: 'http' }, ...(base ? [{ href: sshUrl(base, key, slug), name: 'ssh' }] : [])];
  };
}
