export * from './pitr-recovery';
export { DrillRestoreTime } from './restore-drills';
export * from './housekeeping-schedule';
