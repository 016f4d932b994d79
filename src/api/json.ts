// Bitbucket Data Center's JSON shapes (RestProject, RestRepository, RestBranch, RestTag, RestApplicationUser,
// RestDetailedUser, RestSshKey, RestAccessToken, RestPermittedUser, RestDetailedGroup, RestPermittedGroup) as
// TypeBox schemas, and the mappers that fill them from our rows. The schemas double as response serializers: a
// field that is not declared here is never sent, which keeps hashes and other internals out of responses even if
// a row carries them.
import { createHash } from 'node:crypto';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { AppContext } from '../server/context.js';
import type { AccessToken, Group, Project, Repository, SshKey, User } from '../store/tables.js';

const Link = Type.Object({ href: Type.String() });
const SelfLinks = Type.Object({ self: Type.Array(Link) });
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

export const ErrorBody = Type.Object(
  {
    errors: Type.Array(
      Type.Object({
        context: Nullable(Type.String()),
        message: Type.String({ description: 'What went wrong and how to fix it.' }),
        exceptionName: Nullable(
          Type.String({
            description: "Bitbucket's exception class for the condition where it has one (e.g. com.atlassian.bitbucket.project.NoSuchProjectException), otherwise the same as code.",
          }),
        ),
        code: Type.String({ description: "mirrorfarm's stable error code, e.g. PROJECT_NOT_FOUND." }),
      }),
    ),
  },
  { description: "Bitbucket's error shape." },
);

/** A 204 answer. */
export const NoContent = Type.Null({ description: 'Done; no content.' });

/** Responses every authenticated route can give, for the OpenAPI document. */
export const errorResponses = { '4xx': ErrorBody } as const;

export const ProjectJson = Type.Object({
  key: Type.String(),
  id: Type.Integer(),
  name: Type.String(),
  description: Type.Optional(Type.String()),
  public: Type.Boolean(),
  type: Type.Literal('NORMAL'),
  links: SelfLinks,
});
export type ProjectJson = Static<typeof ProjectJson>;

export const RepositoryJson = Type.Object({
  slug: Type.String(),
  id: Type.Integer(),
  name: Type.String(),
  description: Type.Optional(Type.String()),
  hierarchyId: Type.String(),
  scmId: Type.Literal('git'),
  state: Type.Literal('AVAILABLE'),
  statusMessage: Type.String(),
  forkable: Type.Boolean(),
  project: ProjectJson,
  public: Type.Boolean(),
  archived: Type.Boolean(),
  links: Type.Object({ clone: Type.Array(Type.Object({ href: Type.String(), name: Type.String() })), self: Type.Array(Link) }),
});
export type RepositoryJson = Static<typeof RepositoryJson>;

export const UserJson = Type.Object({
  name: Type.String(),
  emailAddress: Type.Optional(Type.String()),
  id: Type.Integer(),
  displayName: Type.String(),
  active: Type.Boolean(),
  slug: Type.String(),
  type: Type.Literal('NORMAL'),
  links: SelfLinks,
});
export type UserJson = Static<typeof UserJson>;

export const DetailedUserJson = Type.Composite([
  UserJson,
  Type.Object({
    directoryName: Type.String(),
    deletable: Type.Boolean(),
    mutableDetails: Type.Boolean(),
    mutableGroups: Type.Boolean(),
  }),
]);

export const MinimalRefJson = Type.Object({ id: Type.String(), displayId: Type.String(), type: Type.Union([Type.Literal('BRANCH'), Type.Literal('TAG')]) });

export const BranchJson = Type.Object({
  id: Type.String({ examples: ['refs/heads/main'] }),
  displayId: Type.String(),
  type: Type.Literal('BRANCH'),
  latestCommit: Type.String(),
  latestChangeset: Type.String(),
  isDefault: Type.Boolean(),
});

export const TagJson = Type.Object({
  id: Type.String({ examples: ['refs/tags/v1.0'] }),
  displayId: Type.String(),
  type: Type.Literal('TAG'),
  latestCommit: Type.String(),
  latestChangeset: Type.String(),
  hash: Nullable(Type.String({ description: 'The tag object id of an annotated tag; null for a lightweight tag.' })),
});

export const PermittedUserJson = Type.Object({ user: UserJson, permission: Type.String() });

export const GroupJson = Type.Object({ name: Type.String() });

export const DetailedGroupJson = Type.Object({
  name: Type.String(),
  deletable: Type.Boolean({ description: 'Always true: every group lives in mirrorfarm\'s own directory.' }),
});

export const PermittedGroupJson = Type.Object({ group: GroupJson, permission: Type.String() });

export const SshKeyJson = Type.Object({
  id: Type.Integer(),
  text: Type.String(),
  label: Type.String(),
  algorithmType: Type.String({ examples: ['ED25519', 'RSA', 'ECDSA'] }),
  bitLength: Type.Optional(Type.Integer()),
  fingerprint: Type.String({ examples: ['SHA256:...'] }),
  createdDate: Type.Integer(),
});

export const AccessTokenJson = Type.Object({
  id: Type.String(),
  name: Type.String(),
  createdDate: Type.Integer(),
  lastAuthenticated: Type.Optional(Type.Integer()),
  permissions: Type.Array(Type.String()),
  expiryDays: Type.Optional(Type.Integer()),
  expiryDate: Type.Optional(Type.Integer()),
  user: UserJson,
});

export const RawAccessTokenJson = Type.Composite([AccessTokenJson, Type.Object({ token: Type.String({ description: 'The token itself. Shown once; the server keeps only a hash.' }) })]);

// --- mappers --------------------------------------------------------------------------------------------

export type Urls = AppContext['urls'];

export function projectJson(urls: Urls, p: Project): ProjectJson {
  return {
    key: p.key,
    id: p.id,
    name: p.name,
    ...(p.description ? { description: p.description } : {}),
    public: !!p.is_public,
    type: 'NORMAL',
    links: { self: [{ href: `${urls.base()}/projects/${p.key}` }] },
  };
}

/** Stable for the life of a repository (derived from its immutable id and creation time), like Bitbucket's. */
function hierarchyId(r: Repository): string {
  return createHash('sha1').update(`mirrorfarm repository ${r.id} ${r.created_at}`).digest('hex').slice(0, 20);
}

export function repositoryJson(urls: Urls, project: Project, r: Repository): RepositoryJson {
  const ssh = urls.sshClone(project.key, r.slug);
  return {
    slug: r.slug,
    id: r.id,
    name: r.name,
    ...(r.description ? { description: r.description } : {}),
    hierarchyId: hierarchyId(r),
    scmId: 'git',
    state: 'AVAILABLE',
    statusMessage: 'Available',
    // Forks are not supported, so clients should not offer to make one.
    forkable: false,
    project: projectJson(urls, project),
    public: !!r.is_public,
    archived: false,
    links: {
      clone: [{ href: urls.httpClone(project.key, r.slug), name: 'http' }, ...(ssh ? [{ href: ssh, name: 'ssh' }] : [])],
      self: [{ href: `${urls.base()}/projects/${project.key}/repos/${r.slug}/browse` }],
    },
  };
}

export function userJson(urls: Urls, u: User): UserJson {
  return {
    name: u.name,
    ...(u.email ? { emailAddress: u.email } : {}),
    id: u.id,
    displayName: u.display_name,
    active: !!u.active,
    slug: u.name,
    type: 'NORMAL',
    links: { self: [{ href: `${urls.base()}/users/${encodeURIComponent(u.name)}` }] },
  };
}

export function groupJson(g: Group) {
  return { name: g.name };
}

export function detailedGroupJson(g: Group) {
  return { name: g.name, deletable: true };
}

export function detailedUserJson(urls: Urls, u: User, callerId?: number) {
  return { ...userJson(urls, u), directoryName: 'mirrorfarm', deletable: u.id !== callerId, mutableDetails: true, mutableGroups: true };
}

export function branchJson(ref: { ref: string; commit: string }, defaultBranch: string | undefined) {
  return {
    id: ref.ref,
    displayId: ref.ref.slice('refs/heads/'.length),
    type: 'BRANCH' as const,
    latestCommit: ref.commit,
    latestChangeset: ref.commit,
    isDefault: ref.ref === defaultBranch,
  };
}

export function tagJson(ref: { ref: string; commit: string; object: string; objectType: string }) {
  return {
    id: ref.ref,
    displayId: ref.ref.slice('refs/tags/'.length),
    type: 'TAG' as const,
    latestCommit: ref.commit,
    latestChangeset: ref.commit,
    hash: ref.objectType === 'tag' ? ref.object : null,
  };
}

/** Bitbucket's algorithm names and the key size, read from the public key blob (RFC 4253 wire format). */
export function keyDetails(publicKey: string): { algorithmType: string; bitLength?: number } {
  const [type = '', base64 = ''] = publicKey.split(' ');
  if (type === 'ssh-ed25519' || type === 'sk-ssh-ed25519@openssh.com') return { algorithmType: 'ED25519', bitLength: 256 };
  const curve = /^(?:sk-)?ecdsa-sha2-nistp(\d+)/.exec(type);
  if (curve) return { algorithmType: 'ECDSA', bitLength: Number(curve[1]) };
  if (type === 'ssh-rsa' || type === 'ssh-dss') {
    const blob = Buffer.from(base64, 'base64');
    // Fields are length-prefixed: the type name, then e and n (RSA) or p (DSA); the size is that of n / p.
    let offset = 0;
    const field = () => {
      const length = blob.readUInt32BE(offset);
      const value = blob.subarray(offset + 4, offset + 4 + length);
      offset += 4 + length;
      return value;
    };
    try {
      field();
      const first = field();
      const modulus = type === 'ssh-rsa' ? field() : first;
      let bytes = modulus;
      while (bytes.length && bytes[0] === 0) bytes = bytes.subarray(1);
      const bits = bytes.length ? (bytes.length - 1) * 8 + (32 - Math.clz32(bytes[0]!)) : 0;
      return { algorithmType: type === 'ssh-rsa' ? 'RSA' : 'DSA', bitLength: bits };
    } catch {
      return { algorithmType: type === 'ssh-rsa' ? 'RSA' : 'DSA' };
    }
  }
  return { algorithmType: type.toUpperCase() };
}

export function sshKeyJson(k: SshKey) {
  return { id: k.id, text: k.public_key, label: k.label, ...keyDetails(k.public_key), fingerprint: k.fingerprint, createdDate: Number(k.created_at) };
}

export function accessTokenJson(urls: Urls, t: AccessToken, owner: User) {
  return {
    id: String(t.id),
    name: t.name,
    createdDate: Number(t.created_at),
    ...(t.last_used_at !== null ? { lastAuthenticated: Number(t.last_used_at) } : {}),
    permissions: JSON.parse(t.permissions) as string[],
    ...(t.expires_at !== null
      ? { expiryDays: Math.round((Number(t.expires_at) - Number(t.created_at)) / 86_400_000), expiryDate: Number(t.expires_at) }
      : {}),
    user: userJson(urls, owner),
  };
}
