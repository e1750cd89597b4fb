/**
 * Who a request comes from (set by the auth hook of src/admin/server.ts) and what their role allows:
 * admin everything; radiologist reading and feedback (the review form, the feedback API, label
 * imports); viewer reading only.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';

export type Role = 'admin' | 'radiologist' | 'viewer';
export interface Identity {
  name: string;
  role: Role;
}

const identities = new WeakMap<FastifyRequest, Identity>();

export function setIdentity(req: FastifyRequest, who: Identity): void {
  identities.set(req, who);
}

export function identityOf(req: FastifyRequest): Identity | undefined {
  return identities.get(req);
}

const FEEDBACK_PATHS = [/^\/api\/studies\/[^/]+\/feedback$/, /^\/admin\/review\/[^/]+$/, /^\/api\/validation\/labels$/];

/** preHandler: 403 for a write the user's role does not allow. */
export async function enforceRole(req: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return;
  const who = identities.get(req);
  if (!who || who.role === 'admin') return;
  const path = req.url.split('?')[0] ?? '';
  if (path === '/logout') return; // everyone may end their own session
  if (who.role === 'radiologist' && FEEDBACK_PATHS.some((p) => p.test(path))) return;
  await reply.code(403).send({
    error: `user ${who.name} (${who.role}) may not do this: ${req.method} ${path} needs the ${who.role === 'radiologist' ? 'admin' : 'radiologist or admin'} role`,
  });
}
