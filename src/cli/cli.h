/*
 * The gpool command line: one entry per subcommand.
 */
#ifndef GPOOL_CLI_H
#define GPOOL_CLI_H

/* Exit codes shared by every command. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1  /* the command ran and failed */
#define CLI_EXIT_USAGE 2 /* bad arguments or bad input: nothing was done */

int cli_sim_fill(int argc, char **argv);
int cli_sim_replay(int argc, char **argv);
int cli_server(int argc, char **argv);
int cli_agent(int argc, char **argv);
int cli_dev(int argc, char **argv);
int cli_client(const char *cmd, int argc, char **argv);

#endif
