// Git over SSH (placeholder until the transport lands).
import type { AppContext } from '../../server/context.js';

export interface SshServerOptions {
  host: string;
  port: number;
  /** Directory holding the persistent host keys. */
  hostKeyDir: string;
}

export class SshServer {
  constructor(
    private readonly context: AppContext,
    private readonly options: SshServerOptions,
  ) {}

  /** Starts listening; resolves with the bound port. */
  async listen(): Promise<number> {
    void this.context;
    return this.options.port;
  }

  /** Public host keys in OpenSSH format ("ssh-ed25519 AAAA..."), for publishing over HTTPS. */
  hostPublicKeys(): string[] {
    return [];
  }

  /** Stops accepting connections; running sessions finish unless `force`. */
  async close(_force = false): Promise<void> {}
}
