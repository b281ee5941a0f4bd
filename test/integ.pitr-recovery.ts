/**
 * integ-runner lab: deploys PitrLabStack and its Aurora PostgreSQL variant
 * (PitrAuroraLabStack, issue #20), recovers each to `latest` through its
 * trigger function, waits for the build to succeed, and checks that no
 * temporary instance (or cluster) is left. CI only compares the committed
 * snapshot (offline); deploying needs real AWS credentials (see the README).
 */
import { AwsApiCall, ExpectedResult, IntegTest } from '@aws-cdk/integ-tests-alpha';
import { App, Duration } from 'aws-cdk-lib';
import { PitrAuroraLabStack, PitrLabStack } from './lab-stack';
import { LATEST, RecoveryRequest, TAGS } from '../src/contract';

const app = new App();
const stack = new PitrLabStack(app, 'PitrRecoveryLab');
const aurora = new PitrAuroraLabStack(app, 'PitrRecoveryAuroraLab');
const integ = new IntegTest(app, 'PitrRecoveryInteg', {
  testCases: [stack, aurora],
  diffAssets: false,
  regions: ['us-east-1'],
});

const sourceId = stack.instance.instanceIdentifier;
const request: RecoveryRequest = { restoreTime: LATEST, confirm: sourceId };
const started = integ.assertions.invokeFunction({
  functionName: stack.recovery.triggerFunction.functionName,
  payload: JSON.stringify(request),
});

// A restore plus copy of the small lab instance takes well under two hours.
const succeeded = integ.assertions
  .awsApiCall('CodeBuild', 'batchGetBuilds', { ids: [started.getAttString('Payload.buildId')] })
  .assertAtPath('builds.0.buildStatus', ExpectedResult.stringLikeRegexp('^SUCCEEDED$'))
  .waitForAssertions({ totalTimeout: Duration.hours(2), interval: Duration.minutes(2) });

// The runner deletes the temporary instance without waiting; deletion takes
// minutes, so this polls until nothing tagged with the source is left.
const cleanedUp = integ.assertions
  .awsApiCall('ResourceGroupsTaggingAPI', 'getResources', {
    ResourceTypeFilters: ['rds:db'],
    TagFilters: [{ Key: TAGS.SOURCE, Values: [sourceId] }],
  })
  .expect(ExpectedResult.objectLike({ ResourceTagMappingList: [] }))
  .waitForAssertions({ totalTimeout: Duration.minutes(45), interval: Duration.minutes(1) }) as AwsApiCall;
// The assertion framework derives the IAM prefix "tagging" from the SDK
// client's name; the Resource Groups Tagging API's IAM prefix is "tag".
const getResources = { Effect: 'Allow', Action: ['tag:GetResources'], Resource: ['*'] };
cleanedUp.provider.addToRolePolicy(getResources);
cleanedUp.waiterProvider?.addToRolePolicy(getResources);

started.next(succeeded).next(cleanedUp);

// ---- the Aurora PostgreSQL lab: the same recovery, then neither the temporary cluster nor its writer is left.
const auroraId = aurora.cluster.clusterIdentifier;
const auroraRequest: RecoveryRequest = { restoreTime: LATEST, confirm: auroraId };
const auroraStarted = integ.assertions.invokeFunction({
  functionName: aurora.recovery.triggerFunction.functionName,
  payload: JSON.stringify(auroraRequest),
});
const auroraSucceeded = integ.assertions
  .awsApiCall('CodeBuild', 'batchGetBuilds', { ids: [auroraStarted.getAttString('Payload.buildId')] })
  .assertAtPath('builds.0.buildStatus', ExpectedResult.stringLikeRegexp('^SUCCEEDED$'))
  .waitForAssertions({ totalTimeout: Duration.hours(2), interval: Duration.minutes(2) });
const auroraCleanedUp = integ.assertions
  .awsApiCall('ResourceGroupsTaggingAPI', 'getResources', {
    ResourceTypeFilters: ['rds:cluster', 'rds:db'],
    TagFilters: [{ Key: TAGS.SOURCE, Values: [auroraId] }],
  })
  .expect(ExpectedResult.objectLike({ ResourceTagMappingList: [] }))
  .waitForAssertions({ totalTimeout: Duration.minutes(45), interval: Duration.minutes(1) }) as AwsApiCall;
auroraCleanedUp.provider.addToRolePolicy(getResources);
auroraCleanedUp.waiterProvider?.addToRolePolicy(getResources);

// One recovery after the other: each lab's build is alone in its account's CodeBuild and RDS quotas.
cleanedUp.next(auroraStarted).next(auroraSucceeded).next(auroraCleanedUp);
