/*
 * Shipping a job's output to the server: the agent sends what the job's stdout and stderr gained
 * since the last time, each append naming its offset, so that a retry after a lost answer is
 * harmless.  How far the server has each stream is kept beside the stream in the job's directory
 * (stdout.sent, stderr.sent), so that an agent that restarts goes on from there.
 */
#ifndef GPOOL_AGENT_LOGSHIP_H
#define GPOOL_AGENT_LOGSHIP_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Sends job `id`'s new output from its directory dir to the server, as node `node`; with
 * `ended` (the job has exited), all of it, then that it ended.  0 when done or when the server
 * refuses the job's logs (another node runs it now), -1 when the server could not take them: the
 * caller tries again later.
 */
int agent_logs_ship(const char *server, const char *token, const char *node, int64_t id,
                    const char *dir, bool ended);

#endif
