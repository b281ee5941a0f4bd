/**
 * Test helper: a throwaway `moto_server` per test file. The launcher lives
 * with the rehearsal, which starts one too (local/moto-server.ts).
 *
 *   const moto = await startMoto();
 *   const rds = new RDSClient({ ...motoClientConfig(moto.endpoint) });
 *   ...
 *   await moto.stop();
 *
 * Not a test itself (no `.test.ts`), so jest does not collect it.
 */
export * from '../local/moto-server';
