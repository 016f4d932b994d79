// Builds the SSH front end the configuration names (ssh.frontend), with the same host keys, limits and
// exec handling either way.
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import type { SshFrontEnd } from '../transport/ssh/front-end.js';
import { SshServer, type SshServerDeps } from '../transport/ssh/ssh-server.js';
import { OpenSshFrontEnd } from '../transport/sshd/openssh-front-end.js';

export function createSshFrontEnd(config: Config, deps: SshServerDeps): SshFrontEnd {
  const options = {
    host: config.ssh.host,
    port: config.ssh.port,
    hostKeyDir: config.ssh.hostKeyDir ?? join(config.home, 'ssh'),
    sharedHostKeys: config.ssh.hostKeyDir !== undefined,
    user: config.ssh.user,
  };
  if (config.ssh.frontend === 'openssh') return new OpenSshFrontEnd(deps, { ...options, runDir: join(config.home, 'run'), sshdPath: config.ssh.sshdPath });
  return new SshServer(deps, options);
}
