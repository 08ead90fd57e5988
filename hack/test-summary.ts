/**
 * Prints vitest's totals as the plain line CI reads: `N passed, N failed[, N skipped]`.
 *   test-summary.ts [REPORT]                        totals of one JSON report
 *   test-summary.ts --merge OUT REPORT...           adds the reports up into OUT, then prints it
 * A report that is missing (its run did not finish) counts as one failure.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";

interface Report {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  numFailedTestSuites: number;
}

const COUNTS = ["numPassedTests", "numFailedTests", "numPendingTests", "numTodoTests", "numFailedTestSuites"] as const;

function read(file: string): Report {
  if (!existsSync(file)) {
    console.error(`no vitest report at ${file}: the test run did not finish`);
    return { numPassedTests: 0, numFailedTests: 1, numPendingTests: 0, numTodoTests: 0, numFailedTestSuites: 0 };
  }
  return JSON.parse(readFileSync(file, "utf8")) as Report;
}

function add(reports: Report[]): Report {
  const total = { numPassedTests: 0, numFailedTests: 0, numPendingTests: 0, numTodoTests: 0, numFailedTestSuites: 0 };
  for (const r of reports) for (const k of COUNTS) total[k] += r[k];
  return total;
}

let report: Report;
if (process.argv[2] === "--merge") {
  const [out, ...inputs] = process.argv.slice(3);
  report = add(inputs.map(read));
  writeFileSync(out!, JSON.stringify(report));
} else {
  report = read(process.argv[2] ?? ".vitest-report.json");
}
// A suite that fails to load (syntax error, failed global setup) has no failed tests of its own.
const failed = report.numFailedTests + (report.numFailedTests === 0 ? report.numFailedTestSuites : 0);
const skipped = report.numPendingTests + report.numTodoTests;
console.log(`${report.numPassedTests} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
