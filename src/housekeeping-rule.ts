import { Duration, Token, aws_codebuild as codebuild, aws_events as events, aws_events_targets as targets } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { AGE_ACCEPTED, START_ENV, parseAge } from './contract';
import { HousekeepingSchedule } from './housekeeping-schedule';

/** The `OLDER_THAN` value of `olderThan` (`7d`, `36h`), checked by the runner's own parser. */
export function olderThanValue(olderThan: Duration): string {
  const field = 'PitrRecovery: `housekeepingSchedule.olderThan`';
  const hours = olderThan.toHours({ integral: false });
  if (Token.isUnresolved(hours)) {
    throw new Error(`${field} is a token; accepted: ${AGE_ACCEPTED}, known at synth time. Nothing was created.`);
  }
  const value = Number.isInteger(hours) ? (hours % 24 === 0 ? `${hours / 24}d` : `${hours}h`) : olderThan.toHumanString();
  try {
    parseAge(value, field);
  } catch (err) {
    throw new Error(`${field} is ${olderThan.toHumanString()}; accepted: ${AGE_ACCEPTED}. Nothing was created.`);
  }
  return value;
}

/** An EventBridge rule that starts the project with MODE=housekeeping, OLDER_THAN and CONFIRM. */
export function addHousekeepingSchedule(
  scope: Construct, project: codebuild.IProject, sourceId: string, options: HousekeepingSchedule, sourceNoun: string = 'RDS instance',
): events.Rule {
  const olderThan = olderThanValue(options.olderThan);
  return new events.Rule(scope, 'HousekeepingSchedule', {
    description: `Housekeeping of ${sourceNoun} ${sourceId}: drops pre-recovery copies and safety snapshots older than ${olderThan} (cdk-rds-pitr)`,
    schedule: options.schedule,
    targets: [new targets.CodeBuildProject(project, {
      event: events.RuleTargetInput.fromObject({
        environmentVariablesOverride: [
          { name: START_ENV.MODE, value: 'housekeeping', type: 'PLAINTEXT' },
          { name: START_ENV.OLDER_THAN, value: olderThan, type: 'PLAINTEXT' },
          { name: START_ENV.CONFIRM, value: sourceId, type: 'PLAINTEXT' },
        ],
      }),
    })],
  });
}
