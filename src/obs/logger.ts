// JSON logs with pino. Credentials are redacted wherever they may appear in a logged request.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'mirrorfarm' },
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', '*.password', '*.token', 'password', 'token'],
        censor: '[redacted]',
      },
    },
    destination ?? process.stdout,
  );
}
