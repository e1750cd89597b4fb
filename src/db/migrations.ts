/**
 * Versioned migrations of the results store (Kysely's Migrator; applied in name order, recorded in
 * kysely_migration). Never edit a migration that has shipped: add the next one.
 */
import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';

export type Engine = 'sqlite' | 'postgres';

/** Auto-increment primary key in the engine's own words. */
function idColumn(engine: Engine) {
  return engine === 'postgres'
    ? (t: ReturnType<Kysely<unknown>['schema']['createTable']>) => t.addColumn('id', 'serial', (c) => c.primaryKey())
    : (t: ReturnType<Kysely<unknown>['schema']['createTable']>) => t.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement());
}

function migrations(engine: Engine): Record<string, Migration> {
  const withId = idColumn(engine);
  const real = engine === 'postgres' ? 'double precision' : 'real';
  return {
    '0001_results': {
      async up(db: Kysely<unknown>) {
        await withId(db.schema.createTable('results'))
          .addColumn('study_instance_uid', 'varchar(64)', (c) => c.notNull())
          .addColumn('series_instance_uid', 'varchar(64)', (c) => c.notNull())
          .addColumn('instances_hash', 'varchar(64)', (c) => c.notNull())
          .addColumn('job_id', 'text', (c) => c.notNull())
          .addColumn('status', 'varchar(16)', (c) => c.notNull())
          .addColumn('reason', 'text')
          .addColumn('model_name', 'text', (c) => c.notNull())
          .addColumn('model_version', 'varchar(32)', (c) => c.notNull())
          .addColumn('score', sql.raw(real))
          .addColumn('category', 'varchar(16)')
          .addColumn('threshold', sql.raw(real))
          .addColumn('indeterminate_margin', sql.raw(real))
          .addColumn('cnn_score', sql.raw(real))
          .addColumn('fusion', 'varchar(16)')
          .addColumn('instance_count', 'integer', (c) => c.notNull())
          .addColumn('opacity_percent', sql.raw(real))
          .addColumn('high_opacity_percent', sql.raw(real))
          .addColumn('lung_ml', sql.raw(real))
          .addColumn('key_slices', 'text', (c) => c.notNull())
          .addColumn('outputs', 'text', (c) => c.notNull())
          .addColumn('manufacturer', 'text')
          .addColumn('manufacturer_model', 'text')
          .addColumn('kernel', 'text')
          .addColumn('slice_thickness_mm', sql.raw(real))
          .addColumn('kvp', sql.raw(real))
          .addColumn('contrast', 'text')
          .addColumn('calling_ae_title', 'varchar(16)', (c) => c.notNull())
          .addColumn('started_at', 'varchar(32)', (c) => c.notNull())
          .addColumn('finished_at', 'varchar(32)', (c) => c.notNull())
          .addColumn('stored_at', 'varchar(32)', (c) => c.notNull())
          .addUniqueConstraint('results_content', ['series_instance_uid', 'instances_hash', 'model_version'])
          .execute();
        await db.schema.createIndex('results_study').on('results').column('study_instance_uid').execute();
        await db.schema.createIndex('results_finished').on('results').column('finished_at').execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropTable('results').execute();
      },
    },
    '0002_feedback': {
      async up(db: Kysely<unknown>) {
        await withId(db.schema.createTable('feedback'))
          .addColumn('study_instance_uid', 'varchar(64)', (c) => c.notNull())
          .addColumn('series_instance_uid', 'varchar(64)', (c) => c.notNull().defaultTo(''))
          .addColumn('label', 'varchar(32)', (c) => c.notNull())
          .addColumn('agree', 'integer')
          .addColumn('comment', 'text')
          .addColumn('user_name', 'text', (c) => c.notNull())
          .addColumn('source', 'varchar(16)', (c) => c.notNull())
          .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('feedback_study').on('feedback').column('study_instance_uid').execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropTable('feedback').execute();
      },
    },
    '0003_users_audit_settings': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('users')
          .addColumn('name', 'varchar(64)', (c) => c.primaryKey())
          .addColumn('password_hash', 'text', (c) => c.notNull())
          .addColumn('role', 'varchar(16)', (c) => c.notNull())
          .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
          .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
          .execute();
        await withId(db.schema.createTable('api_tokens'))
          .addColumn('token_hash', 'varchar(64)', (c) => c.notNull().unique())
          .addColumn('user_name', 'varchar(64)', (c) => c.notNull().references('users.name').onDelete('cascade'))
          .addColumn('label', 'text', (c) => c.notNull())
          .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
          .execute();
        await withId(db.schema.createTable('audit'))
          .addColumn('at', 'varchar(32)', (c) => c.notNull())
          .addColumn('user_name', 'text', (c) => c.notNull())
          .addColumn('action', 'varchar(32)', (c) => c.notNull())
          .addColumn('study_instance_uid', 'varchar(64)')
          .addColumn('series_instance_uid', 'varchar(64)')
          .addColumn('detail', 'text')
          .execute();
        await db.schema.createIndex('audit_at').on('audit').column('at').execute();
        await db.schema
          .createTable('settings')
          .addColumn('name', 'varchar(64)', (c) => c.primaryKey())
          .addColumn('value', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
          .addColumn('updated_by', 'text', (c) => c.notNull())
          .execute();
      },
      async down(db: Kysely<unknown>) {
        for (const t of ['settings', 'audit', 'api_tokens', 'users']) await db.schema.dropTable(t).execute();
      },
    },
    '0004_sessions': {
      // Browser sessions of the dashboard (src/admin/sessions.ts): keyed by the sha256 of the session
      // id (the id itself lives only in the signed cookie), with the user's name, the session's JSON
      // (cookie settings, CSRF secret) and its end.
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('sessions')
          .addColumn('id_hash', 'varchar(64)', (c) => c.primaryKey())
          .addColumn('user_name', 'varchar(64)')
          .addColumn('data', 'text', (c) => c.notNull())
          .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
          .addColumn('expires_at', 'varchar(32)', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('sessions_expires').on('sessions').column('expires_at').execute();
        await db.schema.createIndex('sessions_user').on('sessions').column('user_name').execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropTable('sessions').execute();
      },
    },
  };
}

export function migrationProvider(engine: Engine): MigrationProvider {
  return { getMigrations: async () => migrations(engine) };
}
