/**
 * What admin commands print: aligned tables and key/value details for people,
 * one JSON document for scripts (`--json`). Errors never come through here:
 * they are thrown, and main prints `spool: <code>: <message>` on stderr.
 */

/** One column of a table: its header, how a row shows in it, and numbers to the right. */
export interface Column<Row> {
  header: string;
  cell: (row: Row) => string;
  align?: 'left' | 'right';
}

/** Rows under upper-case headers, columns two spaces apart, no trailing blanks. */
export function table<Row>(columns: readonly Column<Row>[], rows: readonly Row[]): string {
  const cells = rows.map((row) => columns.map((column) => column.cell(row)));
  const widths = columns.map((column, i) => Math.max(column.header.length, ...cells.map((line) => line[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((value, i) => (columns[i]!.align === 'right' ? value.padStart(widths[i]!) : value.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header.toUpperCase())), ...cells.map(line)].join('\n') + '\n';
}

/** `label  value` lines with the values aligned; a multi-line value is indented under its first line. */
export function details(pairs: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(...pairs.map(([label]) => label.length)) + 2;
  return pairs
    .map(([label, value]) => `${label.padEnd(width)}${value.split('\n').join(`\n${' '.repeat(width)}`)}`.trimEnd())
    .join('\n') + '\n';
}

/** A point in time as ISO 8601 to the second (UTC); `-` for none. */
export function timestamp(date: Date | string | null | undefined): string {
  if (date === null || date === undefined) return '-';
  return new Date(date).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** An age as its two largest units: 45s, 3m05s, 2h10m, 3d04h; `-` for zero (nothing waits). */
export function age(seconds: number): string {
  if (seconds <= 0) return '-';
  const s = Math.floor(seconds);
  const two = (n: number) => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${two(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86_400)}d${two(Math.floor(s / 3600) % 24)}h`;
}

/** Any JSON value on one line, for payloads and results in tables and details. */
export function compactJson(value: unknown): string {
  return value === undefined ? '-' : JSON.stringify(value);
}

/** Shortens text to `max` characters with an ellipsis, on one line. */
export function truncate(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

/** Human output: text as given, ending in a newline. */
export function writeText(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** `--json` output: exactly one JSON document on stdout (Dates as ISO 8601). */
export function writeJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}
