/** Connects. */
export class HTTPConnection {
  open(url: string): void { fetch(url); }
}
export interface Shape { area(): number; }
type Alias = string | number;
enum Color { Red, Green }
export const handler = (x: number) => x * 2;
function plain(a: number) { return a; }
