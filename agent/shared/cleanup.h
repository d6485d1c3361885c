/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Small helpers over __attribute__((cleanup)) in the style of systemd. */

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void freep(void *p)
{
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd)
{
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Hand ownership out of a _cleanup_ variable. */
#define TAKE_PTR(p)                          \
        ({                                   \
                __typeof__(p) _ptr_ = (p);   \
                (p) = NULL;                  \
                _ptr_;                       \
        })

/* The same for a struct that a _cleanup_ function clears: the variable is left zeroed. */
#define TAKE_STRUCT(s)                          \
        ({                                      \
                __typeof__(s) _struct_ = (s);   \
                (s) = (__typeof__(s)){};        \
                _struct_;                       \
        })

#define TAKE_FD(fd)                          \
        ({                                   \
                int _fd_ = (fd);             \
                (fd) = -1;                   \
                _fd_;                        \
        })

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)  \
        static inline void func##p(type *p)      \
        {                                        \
                if (*p)                          \
                        func(*p);                \
        }

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
