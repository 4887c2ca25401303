/* base/list.h: an intrusive circular doubly linked list (a sentinel node heads each list).
 * No allocation; a node is in at most one list at a time per link field. */
#ifndef TP_BASE_LIST_H
#define TP_BASE_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct tp__list {
    struct tp__list *prev, *next;
} tp__list;

#define TP__CONTAINER_OF(ptr, type, field) ((type *)(void *)((char *)(ptr)-offsetof(type, field)))

static inline void tp__list_init(tp__list *l)
{
    l->prev = l->next = l;
}

static inline bool tp__list_empty(const tp__list *l)
{
    return l->next == l;
}

/* Inserts n right after head (at the front). */
static inline void tp__list_push_front(tp__list *head, tp__list *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}

/* Inserts n right before head (at the back). */
static inline void tp__list_push_back(tp__list *head, tp__list *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline void tp__list_remove(tp__list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#endif
