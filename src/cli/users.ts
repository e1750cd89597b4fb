import { createInterface } from 'node:readline';
import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { openResultsDb } from '../db/open.js';
import { roleSchema, Users, type UserRole } from '../db/users.js';

interface StoreFlags {
  spool?: string;
  store?: string;
}

async function withUsers<T>(flags: StoreFlags, fn: (u: Users) => Promise<T>): Promise<T> {
  const overrides: Record<string, Record<string, string>> = {};
  if (flags.spool !== undefined) overrides.spool = { dir: flags.spool };
  if (flags.store !== undefined) overrides.storage = { url: flags.store };
  const db = await openResultsDb(loadConfig({ overrides }));
  try {
    return await fn(new Users(db));
  } finally {
    await db.conn.close();
  }
}

/** The new password: the first line of standard input when it is not a terminal, else asked twice without echo. */
async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    const rl = createInterface({ input: process.stdin });
    for await (const line of rl) return line;
    throw new Error('no password on standard input');
  }
  const ask = (prompt: string): Promise<string> =>
    new Promise((resolve) => {
      const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
      const out = rl as unknown as { _writeToOutput: (s: string) => void };
      process.stderr.write(prompt);
      out._writeToOutput = () => undefined;
      rl.question('', (answer) => {
        rl.close();
        process.stderr.write('\n');
        resolve(answer);
      });
    });
  const a = await ask('password: ');
  if ((await ask('again: ')) !== a) throw new Error('the passwords differ');
  return a;
}

const by = (): string => `cli:${userInfo().username}`;

/** A refused input (bad role, short password, unknown user) as one line, not a stack (main.ts prints a ConfigError's message). */
async function plainly<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const e = err as Error & { issues?: { message: string }[] };
    throw Object.assign(new Error(e.issues?.[0]?.message ?? e.message), { name: 'ConfigError' });
  }
}

/** `mlsam users add|passwd|role|remove|list|token`: local users of the dashboard and API. */
export function registerUsers(program: Command): void {
  const u = program
    .command('users')
    .description('local users of the dashboard and API (roles admin, radiologist, viewer; passwords hashed with bcrypt)');
  const storeFlags = (c: Command): Command =>
    c
      .option('--spool <dir>', 'spool directory (spool.dir; the default store lives there)')
      .option('--store <url>', 'results store (storage.url)');
  storeFlags(
    u
      .command('add')
      .argument('<name>')
      .description('add a user; the password comes from standard input (first line) or is asked twice')
      .requiredOption('--role <role>', 'admin, radiologist or viewer'),
  ).action(async (name: string, flags: StoreFlags & { role: string }) =>
    plainly(async () => {
      const role: UserRole = roleSchema.parse(flags.role);
      const password = await readPassword();
      await withUsers(flags, (x) => x.add(name, password, role, by()));
      process.stdout.write(`user ${name} added (${role})\n`);
    }),
  );
  storeFlags(u.command('passwd').argument('<name>').description('set a new password (standard input or asked twice)')).action(
    async (name: string, flags: StoreFlags) =>
      plainly(async () => {
        const password = await readPassword();
        await withUsers(flags, (x) => x.passwd(name, password, by()));
        process.stdout.write(`password of ${name} changed\n`);
      }),
  );
  storeFlags(
    u.command('role').argument('<name>').argument('<role>', 'admin, radiologist or viewer').description("change a user's role"),
  ).action(async (name: string, role: string, flags: StoreFlags) =>
    plainly(async () => {
      await withUsers(flags, (x) => x.setRole(name, roleSchema.parse(role), by()));
      process.stdout.write(`user ${name} is now ${role}\n`);
    }),
  );
  storeFlags(u.command('remove').argument('<name>').description('remove a user and their API tokens')).action(
    async (name: string, flags: StoreFlags) =>
      plainly(async () => {
        await withUsers(flags, (x) => x.remove(name, by()));
        process.stdout.write(`user ${name} removed\n`);
      }),
  );
  storeFlags(u.command('list').description('list the users and their roles')).action(async (flags: StoreFlags) => {
    for (const x of await withUsers(flags, (y) => y.list())) process.stdout.write(`${x.name}\t${x.role}\t${x.updated_at}\n`);
  });
  storeFlags(
    u
      .command('token')
      .argument('<name>')
      .description('create an API token for the user (printed once; send it as Authorization: Bearer <token>)')
      .option('--label <text>', 'what the token is for', 'integration'),
  ).action(async (name: string, flags: StoreFlags & { label: string }) =>
    plainly(async () => {
      process.stdout.write(`${await withUsers(flags, (x) => x.createToken(name, flags.label, by()))}\n`);
    }),
  );
}
