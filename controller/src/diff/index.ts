/**
 * The diff engine's public surface: compare two responses under a rollout's rules, track noise
 * statistics, mask PII and keep recent mismatch samples. Pure: no I/O anywhere below.
 */
export { compare, compileRules, CompiledRules, DEFAULT_LIMITS } from "./compare.ts";
export type { CompareLimits, CompareResult, CompareRules, CompareRulesInput, CompareSummary, DiffResponse, FieldResult, FieldRule } from "./compare.ts";
export { NoiseTracker, FieldStats, OVERFLOW_PATH } from "./noise.ts";
export type { ComparisonKind, FieldSummary, NoiseSummary, NoiseTrackerOptions } from "./noise.ts";
export { compileJsonSchema, validateJsonSchema, CompiledSchema } from "./json-schema.ts";
export type { SchemaLimits } from "./json-schema.ts";
export { maskPII, compileMaskPatterns, luhnValid, MASK } from "./pii.ts";
export { RingBuffer, SampleStore } from "./samples.ts";
export type { SampleStoreOptions } from "./samples.ts";
export { jaccardSimilarity, levenshteinDistance, levenshteinSimilarity } from "./similarity.ts";
export { parseFieldPath } from "./path.ts";
export { boundedJSON, jsonNestingDepth, measureValue, scanJsonStructure, UnparsedBody } from "./json.ts";
export type { JsonStructureLimits, JsonStructureProblem, SerializeLimits, ValueSize } from "./json.ts";
export type { PathSegment } from "./path.ts";
