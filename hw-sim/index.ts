/**
 * hw-sim: public surface of the module (STYLE.md habit 1). It imports only protocol/ through
 * protocol/index.js, never another module. Exports arrive with the issue that builds it.
 */
export {};
