import { fastifyLeakwatch } from '../fastify/index.js';
export { fastifyLeakwatch };
export type { LeakwatchOptions } from '../fastify/index.js';
export default fastifyLeakwatch;
