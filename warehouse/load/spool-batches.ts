import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { deserialize, serialize } from 'node:v8';
import type { LoadBatch } from './load-types.ts';

const HEADER_BYTES = 4;

export interface SpooledBatches {
  /** The batches again, in order, read back from the spool file one at a time. */
  batches: AsyncIterable<LoadBatch>;
  /** Removes the spool file. */
  close(): Promise<void>;
}

/**
 * Reads every batch from its source into a temporary file before any write transaction opens,
 * so a slow or stalled source never holds the warehouse's write side (on SQLite, the one writer
 * every API request's audit append waits for). One batch is in memory at a time; the file holds
 * only what the source sent (for an incremental run, what changed).
 */
export async function spoolBatches(batches: AsyncIterable<LoadBatch>): Promise<SpooledBatches> {
  const dir = await mkdtemp(path.join(tmpdir(), 'hub-spool-'));
  const file = path.join(dir, 'batches.bin');
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    const writer = await open(file, 'w');
    try {
      for await (const batch of batches) {
        const body = serialize(batch);
        const header = Buffer.alloc(HEADER_BYTES);
        header.writeUInt32LE(body.length);
        await writer.write(header);
        await writer.write(body);
      }
    } finally {
      await writer.close();
    }
  } catch (err) {
    await remove();
    throw err;
  }
  return { batches: readSpool(file), close: remove };
}

async function* readSpool(file: string): AsyncIterable<LoadBatch> {
  const reader = await open(file, 'r');
  try {
    let position = 0;
    for (;;) {
      const header = await readExactly(reader, HEADER_BYTES, position);
      if (header === null) return;
      position += HEADER_BYTES;
      const length = header.readUInt32LE(0);
      const body = await readExactly(reader, length, position);
      if (body === null) throw new Error(`spool file ${file} ends inside a batch`);
      position += length;
      yield deserialize(body) as LoadBatch;
    }
  } finally {
    await reader.close();
  }
}

async function readExactly(handle: FileHandle, length: number, position: number): Promise<Buffer | null> {
  const buffer = Buffer.alloc(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) {
      if (filled === 0) return null;
      throw new Error('spool file is truncated');
    }
    filled += bytesRead;
  }
  return buffer;
}
