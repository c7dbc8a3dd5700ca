import { CommandType, DEFAULT_QUEUE } from '@agent-executor/common';
import type { ClaimRequest, Route } from './store.js';

/** The claim's route; an agent that names none serves the default queue and every built-in type. */
export function routeOf(request: Pick<ClaimRequest, 'queues' | 'types'>): Route {
  return {
    queues: request.queues?.length ? request.queues : [DEFAULT_QUEUE],
    types: request.types?.length ? request.types : CommandType.options,
  };
}

/** The route as one string: requests with the same one compete for the same commands. */
export function routeKey(route: Route): string {
  return `${[...route.queues].sort().join(',')}|${[...route.types].sort().join(',')}`;
}
