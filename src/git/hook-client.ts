// The program git runs as pre-receive and post-receive hook. It never opens the database: it reports to the
// server that started this git process, over the server's local socket (mode 0600, so only the server's own
// user can connect), naming the push by the one-time token the server put in git's environment.
// Only Node built-ins are imported so the hook starts fast.
import { request } from 'node:http';

const hook = process.argv[2];
const socketPath = process.env.MIRRORFARM_HOOK_SOCKET;
const token = process.env.MIRRORFARM_PUSH_TOKEN;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function main(): Promise<number> {
  if (!socketPath || !token || (hook !== 'pre-receive' && hook !== 'post-receive')) {
    process.stderr.write('mirrorfarm: this repository only accepts pushes through the mirrorfarm server\n');
    return 1;
  }
  const updates = (await readStdin())
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [oldOid, newOid, ref] = line.split(' ');
      return { ref, old: oldOid, new: newOid };
    });
  const body = JSON.stringify({ token, updates });
  const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(
      { socketPath, path: `/hooks/${hook}`, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
  const parsed = JSON.parse(answer.text || '{}') as { message?: string };
  if (parsed.message) process.stderr.write(`${parsed.message}\n`);
  return answer.status === 200 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    const outcome = hook === 'pre-receive' ? 'the push was refused and nothing changed' : 'the server records the change when git exits';
    process.stderr.write(`mirrorfarm: the server did not answer the ${hook} hook (${err.message}); ${outcome}\n`);
    process.exit(1);
  },
);
