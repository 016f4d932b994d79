// The keys the OpenSSH front end deals in: what the keys command is asked about and what sshd reports as
// verified for a session ($SSH_USER_AUTH), checked as the built-in server checks offered keys.
import ssh2 from 'ssh2';

/** Refuses what the built-in server refuses (ssh-server.ts checkOfferedKey); sshd's algorithm list does too. */
export function checkKey(type: string, blob: Buffer): string | undefined {
  const parsed = ssh2.utils.parseKey(blob);
  if (parsed instanceof Error || Array.isArray(parsed) || parsed.isPrivateKey()) return 'key cannot be parsed (certificates are not supported)';
  if (!parsed.getPublicSSH().equals(blob)) return 'key cannot be parsed';
  if (parsed.type !== type) return 'key type does not match the key';
  if (parsed.type === 'ssh-dss') return 'DSA keys are not accepted';
  return undefined;
}

/** The one public key in an $SSH_USER_AUTH file ("publickey TYPE BASE64"), or undefined. */
export function verifiedKey(text: unknown): Buffer | undefined {
  if (typeof text !== 'string') return undefined;
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length !== 1) return undefined;
  const match = /^publickey ([a-z0-9@.-]+) ([A-Za-z0-9+/]+={0,2})$/.exec(lines[0]!.trim());
  if (!match) return undefined;
  const blob = Buffer.from(match[2]!, 'base64');
  return checkKey(match[1]!, blob) ? undefined : blob;
}

