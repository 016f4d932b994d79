// The primary's side of a push over SSH through a mirror (src/auth/push-assertion.ts has the rules): turns the
// assertion a mirror sent on its own SSH session into the user it names, or refuses it. What the user may then
// do is decided by authorize(), as for a direct push.
import type { Principal } from '../access/authorize.js';
import { userPrincipal } from '../auth/authenticator.js';
import { keyBlob, ReplayGuard } from '../auth/mirror-token.js';
import { pushAudience, verifyPushAssertion } from '../auth/push-assertion.js';
import type { Repositories } from '../domain/repositories.js';
import type { Users } from '../domain/users.js';
import { Errors, MirrorfarmError } from '../errors.js';
import type { MirrorRegistry } from './mirrors.js';

export class PushAssertions {
  private readonly replay = new ReplayGuard();

  constructor(
    private readonly mirrors: MirrorRegistry,
    private readonly users: Users,
    private readonly repositories: Repositories,
    private readonly baseUrl: () => string,
  ) {}

  /** The user a mirror, authenticated on this SSH connection as `caller`, pushes for. */
  async userFor(caller: Principal, token: string, projectKey: string, slug: string): Promise<Principal> {
    if (caller.kind !== 'mirror') throw new MirrorfarmError('INVALID_INPUT', 400, 'Command "mirrorfarm-push" is for mirrors only: push with git-receive-pack.');
    const mirror = await this.mirrors.get(caller.mirrorId);
    if (!mirror || mirror.state !== 'ACTIVE') throw new MirrorfarmError('MIRROR_REMOVED', 403, 'This mirror no longer has access to the primary.');
    const assertion = await verifyPushAssertion(token, mirror.public_key, pushAudience(this.baseUrl()), this.replay);
    const repository = `${projectKey.toUpperCase()}/${slug}`;
    if (assertion.repository !== repository) throw new MirrorfarmError('MIRROR_PUSH_ASSERTION_INVALID', 403, `The mirror's push assertion was refused: it is for ${assertion.repository}, not ${repository}.`);
    // Only for what the mirror carries: anything else is as missing to it as to a fetch.
    const view = await this.repositories.find(projectKey, slug);
    if (!view || !(await this.mirrors.carries(mirror, view.project.id))) throw Errors.repoNotFound(repository);
    const owner = await this.users.userByKeyBlob(keyBlob(assertion.userKey));
    // Inactive users' keys are not found; the answer is the one a direct push with that key gets.
    if (!owner) throw new MirrorfarmError('BAD_CREDENTIALS', 401, 'This SSH key is no longer registered, or its user was deactivated; log in again with a registered key.');
    return userPrincipal(owner.user, 'ssh-key', await this.users.isSysadmin(owner.user));
  }
}
