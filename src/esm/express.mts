import { leakwatch } from '../express/index.js';
export { leakwatch };
export type { LeakwatchMiddleware, LeakwatchOptions } from '../express/index.js';
export default leakwatch;
