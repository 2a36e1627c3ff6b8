// Runs mongo-java-server (https://github.com/bwaldvogel/mongo-java-server) as the
// native MongoDB-wire server of scripts/infra. Compiled once by install.sh against
// the jars it fetches from Maven Central; started by start.sh.
//
//   java -cp <classes>:<lib>/* MongoServerLauncher HOST PORT memory
//   java -cp <classes>:<lib>/* MongoServerLauncher HOST PORT h2 FILE
//
// Both backends are mongo-java-server's H2 backend: "memory" on an in-memory MVStore,
// "h2" on an MVStore file. Test runs and `make run` thus execute the same query,
// index and locking code; only durability differs. Besides choosing the backend, the
// launcher sets the reported version and works around three bugs of mongo-java-server
// 1.47.0 that would hurt us: see PatchedH2Backend.

import java.io.File;
import java.util.List;
import java.util.stream.Collectors;

import org.h2.mvstore.MVMap;
import org.h2.mvstore.MVStore;

import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.CollectionOptions;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.QueryResult;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.h2.H2Collection;
import de.bwaldvogel.mongo.backend.h2.H2Database;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.oplog.Oplog;

public final class MongoServerLauncher {

    // MongoDB commits its journal every 100 ms; the MVStore default (1 s) would
    // lose ten times as much on a crash.
    private static final int AUTO_COMMIT_DELAY_MS = 100;

    // mongo-java-server's own ServerVersion.MONGO_5_0 advertises wire version 8
    // (MongoDB 4.2), which current drivers refuse to talk to (pymongo 4.20 needs at
    // least 9). So we report what it implements, MongoDB 5.0, with 5.0's wire version, 13.
    private static final MongoVersion MONGO_5_0 = new MongoVersion() {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(5, 0, 0);
        }

        @Override
        public int getWireVersion() {
            return 13;
        }
    };

    private MongoServerLauncher() {
    }

    public static void main(String[] args) {
        configureLogging();
        if (args.length < 3 || !(args[2].equals("memory") || args[2].equals("h2"))
            || (args[2].equals("h2") != (args.length == 4)) || args.length > 4) {
            System.err.println("usage: MongoServerLauncher HOST PORT memory");
            System.err.println("       MongoServerLauncher HOST PORT h2 FILE");
            System.exit(2);
        }
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        String file = args[2].equals("h2") ? new File(args[3]).getAbsolutePath() : null;

        MVStore store = openStore(file);
        H2Backend backend = new PatchedH2Backend(store);
        backend.version(MONGO_5_0);
        MongoServer server = new MongoServer(backend);
        try {
            server.bind(host, port);
        } catch (Exception e) {
            // Netty rethrows a BindException unchecked, and MongoServer only cleans up
            // after RuntimeExceptions: its event loops would keep this JVM alive. Nothing
            // has been written, so the store is closed without a commit; exit() ends the rest.
            store.closeImmediately();
            throw fail("cannot listen on " + host + ":" + port + ": " + e);
        }

        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("MongoServerLauncher: signal received, shutting down");
            // Closes client connections, then the backend, which commits and closes
            // the MVStore: writes acknowledged before the signal are on disk.
            server.shutdownNow();
            System.out.println("MongoServerLauncher: stopped");
            System.out.flush();
        }, "shutdown"));

        System.out.printf("MongoServerLauncher: listening on %s:%d, backend %s, MongoDB %s (wire version %d)%n",
            host, port, file == null ? "memory" : "h2 " + file,
            MONGO_5_0.toVersionString(), MONGO_5_0.getWireVersion());
        // main ends here; Netty's (non-daemon) event-loop threads keep the JVM serving.
    }

    // The H2 backend with three fixes (all verified by tests/integration/test_database_semantics.py):
    //
    // 1. H2Database.drop() removes every map whose name merely starts with
    //    "databases.<name>" or "meta.<name>": dropping database "a" also empties database
    //    "ab" (documents and collection list gone, its unique-index entries left behind).
    //    While such a drop runs, the maps of those other databases are renamed out of its
    //    way, to names no database can have ('$' is not allowed in database names).
    // 2. Updates change the stored document object in place, and findAndModify answers
    //    with that very object, encoded only after the collection lock is released: a
    //    concurrent update can show through, so two callers of
    //    find_one_and_update({$inc: {seq: 1}}, return_document=AFTER) may both get the same
    //    number. The answer is copied while the lock is still held.
    // 3. For the same reason a plain find (no projection) can return a document half
    //    rewritten by a concurrent update: its documents are encoded after the lock is
    //    released. Every query result is copied while the lock is held.
    private static final class PatchedH2Backend extends H2Backend {

        private static final String HIDDEN = "$hidden-during-drop$";
        private static final Object DROP_LOCK = new Object();

        PatchedH2Backend(MVStore store) {
            super(store);
        }

        @Override
        protected MongoDatabase openOrCreateDatabase(String databaseName) {
            MVStore store = getMvStore();  // already set: H2Backend's constructor calls this
            CursorRegistry cursors = getCursorRegistry();
            return new H2Database(databaseName, store, cursors) {
                @Override
                protected MongoCollection<Object> openOrCreateCollection(String name, CollectionOptions options) {
                    // The map names H2Database itself uses for a collection.
                    String fullName = getFullCollectionNamespace(name);
                    return new SnapshotAnswerCollection(this, name, options,
                        store.openMap("databases." + fullName), store.openMap("meta." + fullName), cursors);
                }

                @Override
                public void drop(Oplog oplog) {
                    synchronized (DROP_LOCK) {
                        List<String> others = store.getMapNames().stream()
                            .filter(name -> isOtherDatabasesMap(name, databaseName))
                            .collect(Collectors.toList());
                        others.forEach(name -> store.renameMap(store.openMap(name), HIDDEN + name));
                        try {
                            super.drop(oplog);
                        } finally {
                            others.forEach(name -> store.renameMap(store.openMap(HIDDEN + name), name));
                        }
                    }
                }
            };
        }

        private static final class SnapshotAnswerCollection extends H2Collection {

            SnapshotAnswerCollection(MongoDatabase database, String name, CollectionOptions options,
                                     MVMap<Object, Document> data,
                                     MVMap<String, Object> meta, CursorRegistry cursors) {
                super(database, name, options, data, meta, cursors);
            }

            // Called by the synchronized handleQuery (and aggregate), with the lock held.
            @Override
            protected QueryResult createQueryResult(List<Document> matchedDocuments, int batchSize) {
                List<Document> copies = matchedDocuments.stream().map(Document::cloneDeeply).collect(Collectors.toList());
                return super.createQueryResult(copies, batchSize);
            }

            @Override
            public synchronized Document findAndModify(Document query) {
                Document answer = super.findAndModify(query);
                if (answer.get("value") instanceof Document value) {
                    answer.put("value", value.cloneDeeply());
                }
                return answer;
            }
        }

        private static boolean isOtherDatabasesMap(String mapName, String databaseName) {
            for (String prefix : List.of("databases.", "meta.")) {
                if (mapName.startsWith(prefix + databaseName) && !mapName.startsWith(prefix + databaseName + ".")) {
                    return true;
                }
            }
            return false;
        }
    }

    private static MVStore openStore(String file) {
        if (file == null) {
            return MVStore.open(null);
        }
        File parent = new File(file).getParentFile();
        if (parent != null && !parent.isDirectory() && !parent.mkdirs()) {
            throw fail("cannot create directory " + parent);
        }
        MVStore store;
        try {
            store = new MVStore.Builder().fileName(file).open();
        } catch (RuntimeException e) {
            // Typically "The file is locked": another server already has this file open.
            throw fail("cannot open H2 store " + file + ": " + e.getMessage());
        }
        store.setAutoCommitDelay(AUTO_COMMIT_DELAY_MS);
        return store;
    }

    private static void configureLogging() {
        // slf4j-simple reads these once, when the first logger is created; -D wins.
        setDefault("org.slf4j.simpleLogger.logFile", "System.out");
        setDefault("org.slf4j.simpleLogger.showDateTime", "true");
        setDefault("org.slf4j.simpleLogger.dateTimeFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX");
        setDefault("org.slf4j.simpleLogger.defaultLogLevel", "info");
        setDefault("org.slf4j.simpleLogger.log.io.netty", "warn");
        // One line per connection opened or closed, or per collection and index created
        // (each test makes dozens), drowns everything else. Kept: a warning for each
        // non-unique index, which this server accepts but never uses.
        setDefault("org.slf4j.simpleLogger.log.de.bwaldvogel.mongo.wire.MongoWireProtocolHandler", "warn");
        setDefault("org.slf4j.simpleLogger.log.de.bwaldvogel.mongo.backend.AbstractMongoDatabase", "warn");
    }

    private static void setDefault(String key, String value) {
        if (System.getProperty(key) == null) {
            System.setProperty(key, value);
        }
    }

    // Exits; the return type only lets callers write `throw fail(...)`.
    private static IllegalStateException fail(String message) {
        System.err.println("MongoServerLauncher: ERROR: " + message);
        System.exit(1);
        return new IllegalStateException(message);
    }
}
