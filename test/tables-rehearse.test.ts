/**
 * `rehearse --tables` in a child process, as `npx projen rehearse --tables`
 * runs it: through the bundled runner's `recover` (what CodeBuild runs)
 * against the RDS stand-in and moto. The built-in damage has known numbers
 * (half of 20000 invoices deleted, 50 of the rest changed, 25 added); the
 * rehearsal runs the undo SQL from the report as the master user and checks
 * each table by content. Needs `npx projen bundle`.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '..');
const REHEARSAL = join(ROOT, 'assets', 'rehearsal', 'rehearse.js');

/** A command line as a user types it: through the system shell, in the repository. */
function shell(line: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', line], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

function rehearse(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [REHEARSAL, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

beforeAll(() => {
  if (!existsSync(REHEARSAL)) throw new Error(`${REHEARSAL} is missing; run \`npx projen bundle\` first.`);
});

test('rehearse --tables billing.invoice: the report shows the damage, the undo SQL run as a user brings back T\'s rows and keeps the later ones', async () => {
  const run = await rehearse(['--tables', 'billing.invoice']);
  expect(run.output).toMatch(/billing\.invoice \(restored as pitr_\d{14}\.invoice\): 20000 rows at T, 10025 rows now; since T: 10000 deleted, 25 inserted, 50 changed \(rows paired by "id"\)/);
  expect(run.output).toMatch(/INSERT INTO "billing"\."invoice" \("id", "customer_id", "amount", "status", "issued"\)\nSELECT r\."id"/);
  expect(run.output).toContain('left out: foreign key "invoice_customer_id_fkey" on billing.invoice');
  expect(run.output).toContain('billing.invoice: now holds its 20000 rows at T plus the 25 rows inserted after T, by content');
  expect(run.output).toMatch(/REHEARSAL PASSED: billing\.invoice came back beside the live tables/);
  expect(run.code).toBe(0);
});

test('rehearse --tables with a name that did not exist at T: refused with the close match, exit 1', async () => {
  const run = await rehearse(['--tables', 'billing.invoices', '--adapter', 'local']);
  expect(run.output).toContain('TABLES: billing.invoices did not exist at the restore time; close matches that existed then: billing.invoice.');
  expect(run.output).toContain('Nothing on the original was changed.');
  expect(run.code).toBe(1);
});

test('rehearse --tables with a malformed name: usage error before anything starts', async () => {
  const run = await rehearse(['--tables', 'invoice']);
  expect(run.output).toContain('--tables: "invoice" names no schema');
  expect(run.code).toBe(64);
});

test('the README\'s quoted name, with the README\'s own command line (npx projen rehearse): the double quotes reach TABLES', async () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const line = readme.split('\n').find((l) => /^npx projen rehearse --tables '[^']*"[^']*'/.test(l));
  expect(line).toBeDefined();
  const command = line!.replace(/\s+#[^']*$/, '');
  expect(command).toBe('npx projen rehearse --tables \'billing."Invoice Line"\'');
  const run = await shell(command);
  expect(run.output).not.toContain('is not schema.table');
  expect(run.output).toMatch(/billing\."Invoice Line" \(restored as pitr_\d{14}\."Invoice Line"\): 3000 rows at T, 2900 rows now; since T: 100 deleted, 0 inserted, 0 changed \(rows paired by "Id"\)/);
  expect(run.output).toMatch(/REHEARSAL PASSED: billing\."Invoice Line" came back beside the live tables/);
  expect(run.code).toBe(0);
}, 600_000);
