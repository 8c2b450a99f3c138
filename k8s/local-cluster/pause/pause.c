/*
 * pause: the process that holds a pod's namespaces open.
 *
 * It sleeps until SIGINT or SIGTERM (then exits 0) and, as PID 1 of a pod
 * sharing its PID namespace, reaps every orphan that gets reparented to it.
 *
 * All three signals are blocked and taken synchronously with sigwaitinfo():
 * no handlers, so no async-signal-safety rules and no lost wake-ups. Blocking
 * also matters as PID 1: the kernel drops signals an init process leaves at
 * their default action, but never signals it has blocked.
 *
 * Build: gcc -static -Os -Wall -Wextra -o pause pause.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "envoy-poc-pause 3.10"

int main(int argc, char **argv) {
	if (argc == 2 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
		puts(VERSION);
		return 0;
	}
	if (getpid() != 1)
		fprintf(stderr, "pause: warning: not PID 1, orphans are not reparented here\n");

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
		perror("pause: sigprocmask");
		return 1;
	}

	for (;;) {
		int sig = sigwaitinfo(&set, NULL);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			perror("pause: sigwaitinfo");
			return 1;
		}
		if (sig == SIGCHLD) {
			/* One SIGCHLD may stand for many exits: reap until none is left. */
			while (waitpid(-1, NULL, WNOHANG) > 0)
				;
			continue;
		}
		fprintf(stderr, "pause: got %s, exiting\n", strsignal(sig));
		return 0;
	}
}
