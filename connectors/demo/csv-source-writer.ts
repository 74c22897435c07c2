import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import iconv from 'iconv-lite';

export type CsvValue = string | number | null;

export interface CsvLayout {
  delimiter: string;
  /** Any iconv-lite encoding name. */
  encoding: string;
  lineEnding: '\n' | '\r\n';
  header: readonly string[];
}

const FLUSH_AT_CHARS = 64 * 1024;

/**
 * Writes an agency's CSV export. Rows gather in a string that is encoded and written in
 * chunks; `flush` waits for 'drain' when the stream is full, so memory stays flat however
 * fast rows are produced.
 */
export class CsvSourceWriter {
  private readonly stream: WriteStream;
  private readonly layout: CsvLayout;
  private readonly needsQuotes: RegExp;
  private buffer = '';
  private full = false;
  private failure: Error | null = null;

  constructor(file: string, layout: CsvLayout) {
    this.layout = layout;
    this.stream = createWriteStream(file);
    // Kept rather than thrown from an event, so the generator's next await reports it.
    this.stream.on('error', (err) => {
      this.failure = err;
    });
    this.needsQuotes = new RegExp(`["\\r\\n]|${layout.delimiter.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`);
    this.writeRow(layout.header);
  }

  writeRow(values: readonly CsvValue[]): void {
    let line = '';
    for (let i = 0; i < values.length; i++) {
      if (i > 0) line += this.layout.delimiter;
      const value = values[i];
      if (value === null || value === undefined) continue;
      const text = typeof value === 'number' ? String(value) : value;
      line += this.needsQuotes.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
    }
    this.buffer += line + this.layout.lineEnding;
  }

  async flush(): Promise<void> {
    this.assertHealthy();
    if (this.buffer.length >= FLUSH_AT_CHARS) this.writeBuffer();
    if (this.full) {
      await once(this.stream, 'drain');
      this.full = false;
    }
  }

  async close(): Promise<void> {
    this.assertHealthy();
    this.writeBuffer();
    this.stream.end();
    await once(this.stream, 'finish');
  }

  abort(): void {
    this.stream.destroy();
  }

  private assertHealthy(): void {
    if (this.failure !== null) throw this.failure;
  }

  private writeBuffer(): void {
    if (this.buffer === '') return;
    const encoding = this.layout.encoding.toLowerCase();
    const chunk =
      encoding === 'utf-8' || encoding === 'utf8'
        ? Buffer.from(this.buffer, 'utf8')
        : iconv.encode(this.buffer, encoding);
    this.buffer = '';
    if (!this.stream.write(chunk)) this.full = true;
  }
}
