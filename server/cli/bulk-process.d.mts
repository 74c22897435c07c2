export declare const BULK_NODE_FLAGS: readonly string[];
export declare function missingNodeFlags(
  args: readonly string[],
  execArgv?: readonly string[],
  nodeOptions?: string,
): string[];
export declare function missingBulkFlags(execArgv?: readonly string[], nodeOptions?: string): string[];
export declare function rerunWithFlags(
  script: string,
  args: readonly string[],
  flags: readonly string[],
): Promise<void>;
