/* Everything a Petrel module may use. */
#ifndef PETREL_PETREL_H
#define PETREL_PETREL_H

#include <petrel/buf.h>
#include <petrel/conn.h>
#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/mime.h>
#include <petrel/module.h>
#include <petrel/password.h>
#include <petrel/setting.h>
#include <petrel/stats.h>

#endif
