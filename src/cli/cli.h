/*
 * The gpool command line: one entry per subcommand.
 */
#ifndef GPOOL_CLI_H
#define GPOOL_CLI_H

/* Exit codes shared by every command. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1  /* the command ran and failed */
#define CLI_EXIT_USAGE 2 /* bad arguments or bad input: nothing was done */
/* Not an exit code: the `gpool` executable cannot do this (an https:// or several servers);
 * it runs gpool-core, which can, with the same arguments. */
#define CLI_EXIT_CORE (-1)

/* Says on stderr why the arguments of `gpool CMD` are refused; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An output file's folder must exist and be writable, so that a long run is not wasted:
 * 0, or CLI_EXIT_USAGE with the message. */
int cli_check_writable(const char *cmd, const char *opt, const char *path);

int cli_sim_fill(int argc, char **argv);
int cli_sim_replay(int argc, char **argv);
int cli_server(int argc, char **argv);
int cli_agent(int argc, char **argv);
int cli_dev(int argc, char **argv);
int cli_region(int argc, char **argv);
int cli_swap(int argc, char **argv);
/* A client command; CLI_EXIT_CORE when this executable's HTTP cannot reach the server. */
int cli_client(const char *cmd, int argc, char **argv);

#endif
