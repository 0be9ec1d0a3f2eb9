/* Everything a Petrel module may use. */
#ifndef PETREL_PETREL_H
#define PETREL_PETREL_H

#include <petrel/auth.h>
#include <petrel/buf.h>
#include <petrel/conn.h>
#include <petrel/dns.h>
#include <petrel/ipset.h>
#include <petrel/log.h>
#include <petrel/login.h>
#include <petrel/loop.h>
#include <petrel/mem.h>
#include <petrel/mime.h>
#include <petrel/module.h>
#include <petrel/password.h>
#include <petrel/queue.h>
#include <petrel/sasl.h>
#include <petrel/schedule.h>
#include <petrel/setting.h>
#include <petrel/smtp.h>
#include <petrel/stats.h>
#include <petrel/storage.h>
#include <petrel/transport.h>
#include <petrel/userdb.h>

#endif
