/*
 * kv_cli.h - `tpc-kv put|get`: tpc-kv as a client of a running tpc-kv (kv_cli.c).
 */
#ifndef TPC_TOOLS_KV_CLI_H
#define TPC_TOOLS_KV_CLI_H

/**
 * @brief Run `tpc-kv put ...` or `tpc-kv get ...`; @p argv[0] is "put" or "get".
 * @return the exit status: 0 done, 1 refused or unreachable, 2 usage, 3 get: not found
 */
int kv_cli_main(int argc, char **argv);

#endif
