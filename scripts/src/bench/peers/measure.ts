/**
 * The two measures every peer gets, with the shape of ours (scenarios/throughput.ts, latency.ts):
 * - throughput: N DELAY 0 jobs added from the bench with a fixed number of adds in flight (one
 *   job per add, or batches), 2 worker processes × 8 → completed/s from the first add to the
 *   last completion written back;
 * - latency: one job at a time, from just before the add to its handler starting in a worker.
 * Fresh worker processes for each measure; the database or Redis is shared by a run's measures.
 */
import { cpuSeconds } from '../harness/proc-stats.js';
import { distribution, type Distribution } from '../harness/stats.js';
import { PeerWorkers } from './peer-workers.js';
import { wallNow, type PeerJobData } from './protocol.js';

export interface PeerQueue {
  add: (data: PeerJobData) => Promise<void>;
  addMany: (data: PeerJobData[]) => Promise<void>;
  close: () => Promise<void>;
}

/** A running peer: its queue server, how to add to it and which worker file consumes it. */
export interface PeerBackend {
  /** CPU time the queue server (Redis, PostgreSQL) has used so far. */
  serverCpuSeconds: () => number;
  workerScript: string;
  workerArgs: (queue: string) => string[];
  openQueue: (queue: string) => Promise<PeerQueue>;
  stop: () => Promise<void>;
}

export interface Shape {
  workers: number;
  concurrency: number;
  jobs: number;
  inFlight: number;
  /** 1: one job per add; more: batches of this many. */
  batchSize: number;
}

export interface ThroughputResult {
  completedPerSecond: number;
  addPerSecond: number;
  seconds: number;
  /** CPU time (user + system, from /proc) per job while the load ran: the queue server's and the workers'. */
  cpuMicrosPerJob: { server: number; workers: number };
}

const DELAY_0: PeerJobData = { ms: 0 };

export async function peerThroughput(peer: PeerBackend, queueName: string, s: Shape): Promise<ThroughputResult> {
  const workers = await PeerWorkers.start(peer.workerScript, s.workers, [...peer.workerArgs(queueName), `--concurrency=${s.concurrency}`]);
  const queue = await peer.openQueue(queueName);
  try {
    const batches: number[] = [];
    for (let left = s.jobs; left > 0; left -= s.batchSize) batches.push(Math.min(s.batchSize, left));
    let next = 0;
    const workersCpu = () => workers.pids().reduce((sum, pid) => sum + cpuSeconds(pid), 0);
    const cpuBefore = { server: peer.serverCpuSeconds(), workers: workersCpu() };
    const startedAt = wallNow();
    const adder = async () => {
      for (let i = next++; i < batches.length; i = next++) {
        const n = batches[i] as number;
        if (s.batchSize === 1) await queue.add(DELAY_0);
        else await queue.addMany(new Array<PeerJobData>(n).fill(DELAY_0));
      }
    };
    await Promise.all(Array.from({ length: Math.min(s.inFlight, batches.length) }, adder));
    const addedAt = wallNow();
    const lastAt = await workers.completedAll(s.jobs, 60_000 + s.jobs * 20);
    const seconds = (lastAt - startedAt) / 1000;
    const cpuMicrosPerJob = {
      server: ((peer.serverCpuSeconds() - cpuBefore.server) / s.jobs) * 1e6,
      workers: ((workersCpu() - cpuBefore.workers) / s.jobs) * 1e6,
    };
    return { completedPerSecond: s.jobs / seconds, addPerSecond: s.jobs / ((addedAt - startedAt) / 1000), seconds, cpuMicrosPerJob };
  } finally {
    await queue.close();
    await workers.stop();
  }
}

export async function peerLatency(
  peer: PeerBackend,
  queueName: string,
  s: Pick<Shape, 'workers' | 'concurrency'> & { samples: number; warmup: number },
): Promise<Distribution> {
  const workers = await PeerWorkers.start(peer.workerScript, s.workers, [...peer.workerArgs(queueName), `--concurrency=${s.concurrency}`]);
  const queue = await peer.openQueue(queueName);
  try {
    const latencies: number[] = [];
    for (let sample = 0; sample < s.warmup + s.samples; sample++) {
      const t0 = wallNow();
      await queue.add({ ms: 0, sample });
      const startedAt = await workers.started(sample, 10_000);
      // As ours: the next job is added once this one is done, so each finds idle workers.
      await workers.completedAll(sample + 1, 10_000);
      if (sample >= s.warmup) latencies.push(startedAt - t0);
    }
    return distribution(latencies);
  } finally {
    await queue.close();
    await workers.stop();
  }
}
