export * from './pitr-recovery';
export { DrillRestoreTime } from './restore-drills';
