import { execFile } from 'node:child_process';
import {
  access,
  appendFile,
  chown,
  constants,
  mkdtemp,
  readdir,
  readFile,
  realpath,
  rm,
} from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface PostgresServer {
  port: number;
  dataDir: string;
  url: string;
}

interface Binaries {
  initdb: string;
  pgCtl: string;
}

const DEBIAN_VERSIONS_DIR = '/usr/lib/postgresql';
const SERVICE_USER = 'postgres';
const SUPERUSER = 'hub';

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

// Both binaries must come from the same folder so that initdb and pg_ctl are the same version.
async function firstFolderWithBinaries(folders: string[]): Promise<Binaries | undefined> {
  for (const folder of folders) {
    const binaries = { initdb: join(folder, 'initdb'), pgCtl: join(folder, 'pg_ctl') };
    if ((await isExecutable(binaries.initdb)) && (await isExecutable(binaries.pgCtl))) return binaries;
  }
  return undefined;
}

async function debianFoldersNewestFirst(): Promise<string[]> {
  const versions = await readdir(DEBIAN_VERSIONS_DIR).catch(() => []);
  return versions
    .sort((a, b) => b.localeCompare(a, 'en', { numeric: true }))
    .map((version) => join(DEBIAN_VERSIONS_DIR, version, 'bin'));
}

async function findBinaries(): Promise<Binaries> {
  const pathFolders = (process.env['PATH'] ?? '').split(delimiter).filter(Boolean);
  const found =
    (await firstFolderWithBinaries(pathFolders)) ??
    (await firstFolderWithBinaries(await debianFoldersNewestFirst()));
  if (!found) {
    throw new Error(
      `PostgreSQL binaries are missing: initdb and pg_ctl are neither on PATH nor in ${DEBIAN_VERSIONS_DIR}/*/bin. ` +
        `.ci/run installs Debian's postgresql package; on a developer machine install it the same way.`,
    );
  }
  return found;
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

// initdb refuses to run as root, so as root every PostgreSQL command runs as the service user.
// The cwd is a folder that user can enter; the project folder may not be one.
async function runPostgresCommand(binary: string, args: string[]): Promise<void> {
  const [file, argv] = isRoot() ? ['runuser', ['-u', SERVICE_USER, '--', binary, ...args]] : [binary, args];
  await run(file, argv, { cwd: tmpdir() });
}

async function userIds(user: string): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run('id', ['-u', user]), run('id', ['-g', user])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

async function createDataDir(): Promise<string> {
  const dataDir = await mkdtemp(join(tmpdir(), 'hub-pg-'));
  if (isRoot()) {
    const { uid, gid } = await userIds(SERVICE_USER);
    await chown(dataDir, uid, gid);
  }
  return dataDir;
}

// Racy by nature (the port could be taken before PostgreSQL binds it), which is acceptable for tests.
function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('Could not read the port of a listening socket'));
      });
    });
  });
}

function serverOptions(port: number, dataDir: string): string {
  // pg_ctl hands -o to a shell, hence the quoted socket folder.
  return [
    `-p ${port}`,
    `-k '${dataDir}'`,
    '-c listen_addresses=127.0.0.1',
    // What a streaming replica needs of its primary (the defaults, said outright).
    '-c wal_level=replica',
    '-c max_wal_senders=10',
    // Durability is pointless for throwaway test data and costs seconds per run.
    '-c fsync=off',
    '-c synchronous_commit=off',
    '-c full_page_writes=off',
  ].join(' ');
}

async function readLog(dataDir: string): Promise<string> {
  return readFile(join(dataDir, 'log'), 'utf8').catch(() => '(no log written)');
}

async function startServer(pgCtl: string, dataDir: string, port: number): Promise<void> {
  const args = ['-D', dataDir, '-o', serverOptions(port, dataDir), '-l', join(dataDir, 'log'), '-w', 'start'];
  try {
    await runPostgresCommand(pgCtl, args);
  } catch (error) {
    // pg_ctl only says "examine the log output"; the reason is in the log, which is deleted afterwards.
    throw new Error(`PostgreSQL did not start. Server log:\n${await readLog(dataDir)}`, { cause: error });
  }
}

export async function startPostgres(): Promise<PostgresServer> {
  const { initdb, pgCtl } = await findBinaries();
  const dataDir = await createDataDir();
  try {
    // --no-sync: nothing survives the run, so skip the fsync of the fresh cluster.
    await runPostgresCommand(initdb, [
      '-D',
      dataDir,
      '-A',
      'trust',
      '-U',
      SUPERUSER,
      '--encoding=UTF8',
      '--locale=C',
      '--no-sync',
    ]);
    await allowReplication(dataDir);
    const port = await findFreePort();
    await startServer(pgCtl, dataDir, port);
    return { port, dataDir, url: `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres` };
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
}

const REPLICATION_HBA_LINE = `host replication ${SUPERUSER} 127.0.0.1/32 trust`;

// initdb -A trust already lets local replication connections in; the line is added if a packaging changed that.
async function allowReplication(dataDir: string): Promise<void> {
  const hba = join(dataDir, 'pg_hba.conf');
  const lines = (await readFile(hba, 'utf8')).split('\n').map((l) => l.trim().split(/\s+/));
  const allowed = lines.some(
    (f) => f[0] === 'host' && f[1] === 'replication' && f[3] === '127.0.0.1/32' && f[4] === 'trust',
  );
  if (!allowed) await appendFile(hba, `${REPLICATION_HBA_LINE}\n`);
}

/**
 * A streaming replica of the server at `primaryUrl` (the harness's, or any this module started):
 * a base backup with `pg_basebackup -R` (which writes standby.signal and primary_conninfo), then
 * the copy started as a hot standby on a port of its own. Stop it with stopPostgres.
 */
export async function startReplica(primaryUrl: string): Promise<PostgresServer> {
  const { pgCtl } = await findBinaries();
  // Beside the real pg_ctl (PATH may hold only links to it), so that both are one version.
  const pgBasebackup = join(dirname(await realpath(pgCtl)), 'pg_basebackup');
  const primary = new URL(primaryUrl);
  const dataDir = await createDataDir();
  try {
    await runPostgresCommand(pgBasebackup, [
      '-h',
      primary.hostname,
      '-p',
      primary.port,
      '-U',
      decodeURIComponent(primary.username),
      '-D',
      dataDir,
      '-R',
      '-X',
      'stream',
      '-c',
      'fast',
      '--no-sync',
    ]);
    const port = await findFreePort();
    await startServer(pgCtl, dataDir, port);
    return { port, dataDir, url: `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres` };
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
}

export async function stopPostgres(server: PostgresServer): Promise<void> {
  const { pgCtl } = await findBinaries();
  try {
    await runPostgresCommand(pgCtl, ['-D', server.dataDir, 'stop', '-m', 'fast']);
  } finally {
    // Even if stopping failed, a postmaster whose data folder is gone shuts itself down.
    await rm(server.dataDir, { recursive: true, force: true });
  }
}
