// The one configuration schema. The TypeScript type of the configuration is derived from it, defaults live
// in it, and both the YAML file and MIRRORFARM_* environment variables are validated against it.
import { Type, type Static } from '@sinclair/typebox';

const port = (fallback?: number) => Type.Integer({ minimum: 0, maximum: 65535, ...(fallback === undefined ? {} : { default: fallback }) });

export const ConfigSchema = Type.Object(
  {
    mode: Type.Union([Type.Literal('primary'), Type.Literal('mirror')], { default: 'primary' }),
    home: Type.String({ minLength: 1, default: 'mirrorfarm-home', description: 'Directory for the database, repositories and keys; relative paths resolve against the working directory.' }),
    baseUrl: Type.Optional(Type.String({ pattern: '^https?://', description: 'Public URL of this server, as clients reach it (e.g. behind a TLS-terminating proxy). Derived from the listener when unset.' })),
    displayName: Type.String({ default: 'mirrorfarm' }),
    http: Type.Object(
      {
        host: Type.String({ default: '0.0.0.0' }),
        port: port(7990),
        tls: Type.Object(
          {
            cert: Type.Optional(Type.String({ description: 'PEM certificate chain file; enables HTTPS.' })),
            key: Type.Optional(Type.String({ description: 'PEM private key file.' })),
          },
          { additionalProperties: false, default: {} },
        ),
        trustProxy: Type.Boolean({ default: false, description: 'Trust X-Forwarded-* headers from a proxy in front.' }),
        maxRequestBodyBytes: Type.Integer({ minimum: 1024, default: 1048576, description: 'Limit for REST request bodies.' }),
        maxFetchRequestBytes: Type.Integer({ minimum: 1024, default: 104857600, description: 'Limit for a git fetch negotiation request (after gzip decoding).' }),
        maxPushBytes: Type.Integer({ minimum: 1024, default: 10737418240, description: 'Limit for one git push request body (after gzip decoding).' }),
      },
      { additionalProperties: false, default: {} },
    ),
    ssh: Type.Object(
      {
        enabled: Type.Boolean({ default: true }),
        host: Type.String({ default: '0.0.0.0' }),
        port: port(7999),
        publicHost: Type.Optional(Type.String({ description: 'Host name in SSH clone URLs; defaults to the host of baseUrl.' })),
        publicPort: Type.Optional(port()),
        frontend: Type.Union([Type.Literal('builtin'), Type.Literal('openssh')], {
          default: 'builtin',
          description: "Who speaks SSH: 'builtin' (mirrorfarm's own ssh2 server; the laptop demo) or 'openssh' (OpenSSH's sshd, started and managed by mirrorfarm; for production: git data goes git -> sshd -> client).",
        }),
        user: Type.String({
          pattern: '^[a-z_][a-z0-9_.-]{0,31}$',
          default: 'git',
          description: 'The account clients log in as, shown in clone URLs (ssh://USER@HOST:PORT/...). With frontend openssh it must be the account mirrorfarm runs as.',
        }),
        sshdPath: Type.String({ default: '/usr/sbin/sshd', description: "With frontend openssh: OpenSSH's sshd binary (Debian package openssh-server)." }),
        hostKeyDir: Type.Optional(
          Type.String({
            description: 'Directory with the SSH host keys (ssh_host_ed25519_key, ssh_host_ecdsa_key), shared by every node of a mirror farm; read only, never generated. Default: HOME/ssh, generated on first start.',
          }),
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    admin: Type.Object(
      {
        password: Type.Optional(Type.String({ minLength: 8, description: 'Password for the sysadmin "admin" created on first start.' })),
      },
      { additionalProperties: false, default: {} },
    ),
    loginThrottle: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: 'Throttle failed password attempts (HTTP 429 with Retry-After).' }),
        addressMaxFailures: Type.Integer({ minimum: 1, default: 10, description: 'Failed password attempts from one client address before it must wait.' }),
        addressMaxBlockSeconds: Type.Integer({ minimum: 1, default: 300, description: 'Longest wait for one address (1 s, doubling per further failure).' }),
        accountMaxFailures: Type.Integer({ minimum: 1, default: 30, description: 'Failed password attempts for one account, from any address, before it must wait.' }),
        accountMaxBlockSeconds: Type.Integer({ minimum: 1, default: 60, description: 'Longest wait for one account; kept short so that nobody can lock a user out for long.' }),
        windowSeconds: Type.Integer({ minimum: 1, default: 900, description: 'Failures are forgotten this long after the last one.' }),
        trustedAddressSeconds: Type.Integer({ minimum: 0, default: 2592000, description: 'An address a user logged in from is exempt from that account\'s limit for this long.' }),
      },
      { additionalProperties: false, default: {} },
    ),
    web: Type.Object(
      {
        sessionIdleMinutes: Type.Integer({ minimum: 1, default: 60, description: 'A web UI sign-in ends after this long without a request.' }),
        sessionMaxHours: Type.Integer({ minimum: 1, default: 12, description: 'A web UI sign-in ends this long after it began, however active.' }),
      },
      { additionalProperties: false, default: {} },
    ),
    git: Type.Object(
      {
        binary: Type.String({ default: 'git' }),
        timeoutSeconds: Type.Integer({ minimum: 1, default: 21600, description: 'Upper bound for one git transfer.' }),
        defaultBranch: Type.String({ default: 'main' }),
      },
      { additionalProperties: false, default: {} },
    ),
    lfs: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: 'Serve the Git LFS API (batch, objects, locks) and git-lfs-authenticate over SSH.' }),
        maxObjectBytes: Type.Integer({ minimum: 1, default: 10737418240, description: 'Largest Git LFS object accepted.' }),
        maxRepositoryBytes: Type.Integer({ minimum: 0, default: 0, description: 'Most Git LFS bytes one repository may hold; 0 for no limit.' }),
        tokenLifetimeSeconds: Type.Integer({ minimum: 10, maximum: 86400, default: 3600, description: 'Lifetime of the authorizations in batch answers and from git-lfs-authenticate.' }),
      },
      { additionalProperties: false, default: {} },
    ),
    events: Type.Object(
      {
        retentionDays: Type.Integer({ minimum: 1, default: 30 }),
        maxEvents: Type.Integer({ minimum: 10, default: 1000000 }),
      },
      { additionalProperties: false, default: {} },
    ),
    mirror: Type.Object(
      {
        upstreamUrl: Type.Optional(Type.String({ description: 'https:// base URL of the primary this mirror copies (mirror mode).' })),
        keyFile: Type.Optional(Type.String({ description: 'The mirror identity (ed25519, OpenSSH format), shared by all nodes of a farm. Generated into HOME/mirror/id_ed25519 when unset.' })),
        nodeId: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$', description: 'This node of the farm; defaults to the host name.' })),
        snapshotIntervalSeconds: Type.Integer({ minimum: 5, default: 180, description: 'How often the full ref-state comparison with the primary runs.' }),
        syncParallelism: Type.Integer({ minimum: 1, maximum: 64, default: 4 }),
        authCacheSeconds: Type.Integer({ minimum: 0, default: 60, description: 'How long a verified credential is trusted without asking the primary again.' }),
        authGraceSeconds: Type.Integer({ minimum: 0, default: 900, description: 'How long credentials verified before keep working while the primary is unreachable.' }),
        maxDeleteShare: Type.Number({ minimum: 0, maximum: 1, default: 0.5, description: 'A snapshot pass refuses to delete more than this share of the mirrored repositories.' }),
        farmAvailability: Type.Union([Type.Literal('consistent'), Type.Literal('available')], {
          default: 'consistent',
          description:
            "A node of a farm of several whose primary cannot be reached: 'consistent' leaves the load balancer's rotation once its lease runs out (it cannot tell whether only it is cut off); 'available' keeps serving what it has, at the risk of serving an older state than the other nodes if only it was cut off.",
        }),
        lfsPrefetch: Type.Boolean({ default: true, description: 'After a repository synced, fetch the Git LFS objects its default branch refers to, so the first clone finds them on the mirror.' }),
        pushThrough: Type.Boolean({ default: true, description: 'Pass pushes (HTTPS and SSH) on to the primary as the same user; false: refuse them, naming the primary\'s URL.' }),
        pushWaitSeconds: Type.Number({ minimum: 0, maximum: 600, default: 10, description: 'How long a push through this mirror waits for the farm to serve it before returning to the client (read-your-writes).' }),
        upstreamSshHost: Type.Optional(Type.String({ minLength: 1, description: "Where this node reaches the primary's SSH server, when not at the host the primary publishes (a proxy or NAT in between). The host key stays pinned." })),
        upstreamSshPort: Type.Optional(port()),
      },
      { additionalProperties: false, default: {} },
    ),
    mirroring: Type.Object(
      {
        webhookUrl: Type.Optional(Type.String({ pattern: '^https://', description: 'Primary: POSTed to when a mirror has synchronized a repository (e.g. for CI).' })),
        nodeOfflineSeconds: Type.Integer({ minimum: 1, default: 30, description: 'Primary: a mirror farm node not heard from for this long shows as OFFLINE and no longer counts as a farm member.' }),
        prepareTimeoutSeconds: Type.Number({
          minimum: 1,
          maximum: 3600,
          default: 30,
          description:
            "Primary: how long a farm's other nodes have to stage a change after the first did before they are evicted. A third of it is the nodes' lease and a third the time the load balancer is given to take a node out of rotation (docs/mirroring-protocol.md).",
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    trust: Type.Object(
      {
        caFile: Type.Optional(Type.String({ description: 'PEM bundle of extra CAs to trust for HTTPS to the primary, mirrors and webhooks (added to the system trust store).' })),
      },
      { additionalProperties: false, default: {} },
    ),
    log: Type.Object(
      {
        level: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info' }),
      },
      { additionalProperties: false, default: {} },
    ),
    shutdownTimeoutSeconds: Type.Integer({ minimum: 0, default: 30, description: 'How long running transfers may finish after SIGTERM.' }),
  },
  { additionalProperties: false },
);

export type Config = Static<typeof ConfigSchema>;
