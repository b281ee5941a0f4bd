export * from './pitr-recovery';
