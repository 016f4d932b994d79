// REST API registration (placeholder until the API lands).
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../server/context.js';

export async function registerRestApi(app: FastifyInstance, context: AppContext): Promise<void> {
  void app;
  void context;
}
