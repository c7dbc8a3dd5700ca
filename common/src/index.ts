export * from './command.js';
export * from './requests.js';
export * from './result-limits.js';
export * from './fleet.js';
