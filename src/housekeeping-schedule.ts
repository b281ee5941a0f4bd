import { Duration, aws_events as events } from 'aws-cdk-lib';

/** Scheduled housekeeping of a {@link PitrRecovery}. */
export interface HousekeepingSchedule {
  /** When housekeeping runs, for example `events.Schedule.rate(Duration.days(1))`. */
  readonly schedule: events.Schedule;

  /**
   * Pre-recovery copies and safety snapshots older than this are dropped
   * (`OLDER_THAN`): whole hours, from 1 hour to 3650 days.
   */
  readonly olderThan: Duration;
}
