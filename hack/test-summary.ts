/** Prints vitest's totals as the plain line CI reads: `N passed, N failed[, N skipped]`. */
import { existsSync, readFileSync } from "node:fs";

const file = process.argv[2] ?? ".vitest-report.json";
if (!existsSync(file)) {
  console.log("0 passed, 1 failed");
  console.error(`no vitest report at ${file}: the test run did not finish`);
  process.exit(0);
}
const r = JSON.parse(readFileSync(file, "utf8")) as { numPassedTests: number; numFailedTests: number; numPendingTests: number; numTodoTests: number; numFailedTestSuites: number };
// A suite that fails to load (syntax error, failed global setup) has no failed tests of its own.
const failed = r.numFailedTests + (r.numFailedTests === 0 ? r.numFailedTestSuites : 0);
const skipped = r.numPendingTests + r.numTodoTests;
console.log(`${r.numPassedTests} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
