export { catalog, SidecarError, isSidecarError, type SidecarErrorCode } from './catalog.ts';
export { errorBody, sendError, writeSocketError } from './respond.ts';
