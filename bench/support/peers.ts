/** Peers, driven the way their docs advise; loaded from bench/node_modules when installed. */
export interface Peer {
  drain(url: string, jobs: number, concurrency: number): Promise<number>;
  latency(url: string, count: number, ratePerSec: number): Promise<number[]>;
  describe(): string;
}

export const peers: Record<string, Peer> = {};
