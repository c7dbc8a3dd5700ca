export * from './command.js';
export * from './requests.js';
