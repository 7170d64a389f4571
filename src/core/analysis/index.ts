// The detector's pure math: no I/O, no clocks, no globals. Unit-tested on synthetic series.
export { invertSym, nnlsNormal, median } from './linalg';
export { fitRetention, fitLine, theilSen, type Coefficient, type RetentionFit, type Line, type FitOptions } from './regression';
export { decideVerdict, DEFAULT_RULES, type RouteEvidence, type VerdictRules, type VerdictResult, type Signal } from './verdict';
export { analyzeWindow, type CheckpointWindow, type RouteAnalysis, type WindowAnalysis, type AnalysisOptions } from './checkpoints';
export { formatBytes, formatCount, formatDuration, project, secondsToLimit, type Projection } from './projection';
export { huberLocation, summarizeIsolated, type IsolatedEstimate, type IsolatedSummary, type IsolatedOptions } from './isolated';
export { fitSampled, sampledSignal, dataDependence, type SampledCoefficient, type SampledOptions, type DataDependence } from './sampled';
export { checkpointGaps, chargedCpuMs, BUDGET_RULES, type BudgetInput, type BudgetRules, type Gaps } from './budget';
export { quietAnalysis, stepCalm, calmSlack, CALM_RULES, type CalmRoute, type CalmRules, type CalmState, type CalmChange } from './calm';
