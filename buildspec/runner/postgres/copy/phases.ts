/**
 * The data path's phases, in the order the build log shows them: the one
 * place each phase's log line is written. The orchestrator
 * (postgres/data-path.ts) runs them in this order; each phase module names
 * its step from here.
 */
export const PHASES = {
  checks: (): string => 'check roles, privileges, swap hazards and disk on the original',
  dumpSchema: (db: string, jobs: number): string => `${db}: dump schema and small tables (pg_dump -Fd -j ${jobs})`,
  create: (db: string, into: string, drill: boolean): string =>
    `${db}: create ${JSON.stringify(into)} on the ${drill ? 'temporary instance (drill)' : 'original'} (owner and privileges but CONNECT)`,
  dropForReplace: (db: string): string => `${db}: drop it on the original (strategy replace)`,
  preData: (db: string): string => `${db}: restore schema (pre-data)`,
  /** Without streamed tables, one pg_restore loads the data and builds the post-data objects. */
  copyDataAndPostData: (db: string, jobs: number): string =>
    `${db}: copy data, then indexes, constraints, triggers, materialized views (pg_restore -j ${jobs})`,
  copyData: (db: string, streamed: number, jobs: number): string =>
    `${db}: copy data (${streamed} streamed table(s), each one's indexes as soon as its data is in; ${jobs} at a time)`,
  postData: (db: string, jobs: number): string => `${db}: build indexes, constraints, triggers, materialized views (post-data, -j ${jobs})`,
  analyze: (db: string, alreadyAnalyzed: number, jobs: number): string =>
    `${db}: ANALYZE${alreadyAnalyzed > 0 ? ` the rest (${alreadyAnalyzed} done)` : ''} (${jobs} at a time)`,
  verify: (db: string, into: string): string => `${db}: verify ${JSON.stringify(into)} against the point-in-time copy`,
  applyProperties: (db: string): string => `${db}: apply database privileges, settings and comment`,
  swap: (db: string): string => `${db}: swap in (block connections, end sessions, rename)`,
} as const;
