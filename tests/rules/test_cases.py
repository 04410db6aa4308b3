"""Per-rule cases: code each rule must flag (on the given line) and similar code it must leave alone."""

from __future__ import annotations

import pytest

from bot.rules import RULES
from tests.rules.test_unicode import CLEAN as UNICODE_CLEAN
from tests.rules.test_unicode import FLAG as UNICODE_FLAG
from tests.rules.util import findings, hits

# (rule id, path, code, 1-based line that must be flagged)
FLAG: list[tuple[str, str, str, int]] = [
    # --- SQL injection
    ("py-sql-format", "app/db.py", 'cur.execute(f"SELECT * FROM users WHERE id = {uid}")', 1),
    ("py-sql-format", "app/db.py", "cur.execute(\"DELETE FROM t WHERE id = '%s'\" % uid)", 1),
    ("py-sql-format", "app/db.py", 'cur.execute("SELECT * FROM t WHERE name = {}".format(name))', 1),
    ("py-sql-format", "app/db.py", 'cur.execute("SELECT * FROM t WHERE id = " + str(uid))', 1),
    ("py-sql-format", "app/db.py", "q = f\"UPDATE users SET name = '{name}'\"\nsession.execute(text(q))", 1),
    (
        "py-sql-format",
        "app/db.py",
        'sql = f"""\n    SELECT id FROM orders\n    WHERE user_id = {uid}\n"""\ncur.execute(sql)',
        3,
    ),
    ("py-sql-format", "app/db.py", "User.objects.raw(f\"SELECT * FROM auth_user WHERE email = '{e}'\")", 1),
    ("py-sql-format", "app/db.py", "cur.execute(f\"SELECT * FROM t WHERE tag = '#x' AND id = {uid}\")", 1),
    (
        "js-sql-template",
        "src/db.js",
        "await pool.query(`SELECT * FROM users WHERE id = ${req.params.id}`);",
        1,
    ),
    (
        "js-sql-template",
        "src/db.ts",
        'const rows = await db.query("SELECT * FROM t WHERE name = \'" + name + "\'");',
        1,
    ),
    (
        "js-sql-template",
        "src/db.ts",
        "const sql = `DELETE FROM t WHERE id = ${id}`;\nawait client.query(sql);",
        1,
    ),
    (
        "go-sql-format",
        "db/users.go",
        'rows, err := db.Query(fmt.Sprintf("SELECT * FROM users WHERE id = %s", id))',
        1,
    ),
    (
        "go-sql-format",
        "db/users.go",
        'row := db.QueryRowContext(ctx, "SELECT name FROM users WHERE id = " + id)',
        1,
    ),
    (
        "go-sql-format",
        "db/users.go",
        'q := fmt.Sprintf("DELETE FROM users WHERE id = %d", id)\n_, err := db.Exec(q)',
        1,
    ),
    (
        "go-sql-format",
        "db/users.go",
        "rows, err := db.Query(`SELECT * FROM t WHERE u = 'http://x' AND id = ` + id)",
        1,
    ),
    (
        "js-sql-template",
        "src/db.js",
        "await pool.query(\"SELECT * FROM t WHERE u = 'http://x' /* */ AND id = \" + id);",
        1,
    ),
    (
        "java-sql-concat",
        "src/Repo.java",
        'ResultSet rs = conn.createStatement().executeQuery("SELECT * FROM u WHERE id = " + id);',
        1,
    ),
    (
        "java-sql-concat",
        "src/Repo.java",
        'String sql = "SELECT * FROM u WHERE name = \'" + name + "\'";\nstmt.executeQuery(sql);',
        1,
    ),
    ("rb-sql-interpolation", "app/models/user.rb", "User.where(\"name = '#{params[:name]}'\")", 1),
    (
        "rb-sql-interpolation",
        "app/models/user.rb",
        'User.find_by_sql("SELECT * FROM users WHERE id = #{id}")',
        1,
    ),
    ("rb-sql-interpolation", "app/models/user.rb", 'scope.order("#{params[:sort]} #{params[:dir]}")', 1),
    # --- weak password hashing
    ("weak-password-hash", "app/auth.py", "digest = hashlib.sha256(password.encode()).hexdigest()", 1),
    ("weak-password-hash", "app/auth.py", "h = hashlib.md5()\nh.update(user.password.encode())", 2),
    (
        "weak-password-hash",
        "src/auth.js",
        "const h = crypto.createHash('md5').update(password).digest('hex');",
        1,
    ),
    ("weak-password-hash", "auth/hash.go", "sum := sha256.Sum256([]byte(password))", 1),
    ("weak-password-hash", "app/models/user.rb", "self.digest = Digest::SHA1.hexdigest(password)", 1),
    # --- JWT
    ("jwt-unverified", "app/auth.py", "claims = jwt.decode(token, verify=False)", 1),
    (
        "jwt-unverified",
        "app/auth.py",
        'claims = jwt.decode(\n    token,\n    options={"verify_signature": False},\n)',
        3,
    ),
    ("jwt-unverified", "src/auth.js", "const claims = jwt.decode(req.headers.authorization);", 1),
    # code-looking text in a comment is not code: it satisfies no "is there a jwt.verify?" test
    (
        "jwt-unverified",
        "src/auth.js",
        "// checked later by jwt.verify(token, key)\nconst c = jwt.decode(token);",
        2,
    ),
    ("jwt-unverified", "auth/jwt.go", "tok, _, err := new(jwt.Parser).ParseUnverified(raw, claims)", 1),
    ("jwt-unverified", "app/lib/auth.rb", "payload, _ = JWT.decode(token, nil, false)", 1),
    ("py-jwt-algorithms", "app/auth.py", "claims = jwt.decode(token, settings.JWT_KEY)", 1),
    ("jwt-none-alg", "app/auth.py", 'jwt.decode(token, key, algorithms=["HS256", "none"])', 1),
    ("jwt-none-alg", "src/auth.ts", "jwt.verify(token, key, { algorithms: ['none'] });", 1),
    # --- credentials
    ("hardcoded-secret", "app/config.py", 'DB_PASSWORD = "s3cr3t-Pa55"', 1),
    ("hardcoded-secret", "app/config.py", 'client = Client(api_key="sk_9f8a7b6c5d4e")', 1),
    (
        "hardcoded-secret",
        "src/config.ts",
        "const clientSecret: string = 'a8f5f167f44f4964e6c998dee827110c';",
        1,
    ),
    ("hardcoded-secret", "cmd/main.go", 'apiKey := "AbC123xYz789"', 1),
    ("hardcoded-secret", "src/Config.java", 'private static final String PASSWORD = "hunter2!";', 1),
    ("hardcoded-secret", "config/app.rb", "config.secret_key = 'd41d8cd98f00b204'", 1),
    ("hardcoded-secret", "app/settings.py", 'DATABASE_URL = "postgres://app:Tr0ub4dor@db:5432/app"', 1),
    ("private-key", "deploy/key.pem", "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA", 1),
    (
        "private-key",
        "app/keys.py",
        'KEY = """-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"""',
        1,
    ),
    (
        "known-token-format",
        "README.md",
        "export GITHUB_TOKEN=ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
        1,
    ),
    (
        "known-token-format",
        "app/aws.py",
        'boto3.client("s3", aws_access_key_id="AKIA' + "Q3EGXYZ7PLM4WRTN" + '")',
        1,
    ),
    # --- secrets in logs
    ("secret-in-log", "app/auth.py", 'logger.info("login token=%s", token)', 1),
    ("secret-in-log", "app/auth.py", 'print(f"password is {password}")', 1),
    ("secret-in-log", "app/auth.py", 'log.debug("hdr %s", request.headers["Authorization"])', 1),
    ("secret-in-log", "app/auth.py", 'logger.info("issued", access_token=access_token)', 1),
    ("secret-in-log", "src/auth.js", "console.log(`api key: ${apiKey}`);", 1),
    ("secret-in-log", "auth/login.go", 'log.Printf("session token %s", sessionToken)', 1),
    ("secret-in-log", "src/Auth.java", 'logger.info("password=" + password);', 1),
    ("secret-in-log", "app/controllers/s.rb", 'Rails.logger.info "token: #{user.api_token}"', 1),
    # --- timing
    ("timing-unsafe-compare", "app/hooks.py", "if signature == expected:\n    return True", 1),
    (
        "timing-unsafe-compare",
        "app/hooks.py",
        'if hmac.new(k, body, "sha256").hexdigest() != request.headers["X-Signature"]:',
        1,
    ),
    (
        "timing-unsafe-compare",
        "src/hooks.ts",
        "if (req.query.token !== user.resetToken) throw new Error();",
        1,
    ),
    ("timing-unsafe-compare", "hooks/verify.go", "if !bytes.Equal(mac, expectedMAC) {", 1),
    ("timing-unsafe-compare", "src/Hooks.java", "if (!signature.equals(computed)) {", 1),
    (
        "timing-unsafe-compare",
        "app/lib/hooks.rb",
        "return head(:forbidden) unless params[:token] == account.api_token",
        1,
    ),
    # --- randomness
    (
        "insecure-random-secret",
        "app/tokens.py",
        "token = ''.join(random.choice(ALPHABET) for _ in range(32))",
        1,
    ),
    (
        "insecure-random-secret",
        "app/tokens.py",
        "def make_reset_token():\n    return random.getrandbits(64)",
        2,
    ),
    ("insecure-random-secret", "src/otp.js", "const otp = Math.floor(Math.random() * 1e6);", 1),
    ("insecure-random-secret", "auth/otp.go", "otpCode := rand.Intn(1000000)", 1),
    # --- config and unsafe APIs
    (
        "cors-wildcard-credentials",
        "app/main.py",
        'app.add_middleware(\n    CORSMiddleware,\n    allow_origins=["*"],\n    allow_credentials=True,\n)',
        3,
    ),
    ("cors-wildcard-credentials", "app/__init__.py", "CORS(app, supports_credentials=True)", 1),
    ("cors-wildcard-credentials", "src/app.js", "app.use(cors({ origin: true, credentials: true }));", 1),
    (
        "cors-wildcard-credentials",
        "src/app.js",
        "res.setHeader('Access-Control-Allow-Origin', '*');\n"
        "res.setHeader('Access-Control-Allow-Credentials', 'true');",
        1,
    ),
    (
        "cors-wildcard-credentials",
        "api/server.go",
        'c := cors.New(cors.Options{\n\tAllowedOrigins:   []string{"*"},\n\tAllowCredentials: true,\n})',
        2,
    ),
    (
        "cors-wildcard-credentials",
        "mysite/settings.py",
        "CORS_ALLOW_ALL_ORIGINS = True\nCORS_ALLOW_CREDENTIALS = True",
        1,
    ),
    (
        "debug-enabled",
        "app/main.py",
        'if __name__ == "__main__":\n    app.run(host="0.0.0.0", debug=True)',
        2,
    ),
    ("debug-enabled", "mysite/settings.py", "DEBUG = True", 1),
    ("debug-enabled", "app/factory.py", 'app.config["DEBUG"] = True', 1),
    ("debug-enabled", "config/environments/production.rb", "  config.consider_all_requests_local = true", 1),
    ("tls-verify-disabled", "app/client.py", "r = requests.get(url, timeout=5, verify=False)", 1),
    (
        "tls-verify-disabled",
        "src/client.js",
        "const agent = new https.Agent({ rejectUnauthorized: false });",
        1,
    ),
    (
        "tls-verify-disabled",
        "net/client.go",
        "tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}",
        1,
    ),
    ("tls-verify-disabled", "lib/client.rb", "http.verify_mode = OpenSSL::SSL::VERIFY_NONE", 1),
    ("py-yaml-unsafe-load", "app/conf.py", "data = yaml.load(stream, Loader=yaml.Loader)", 1),
    ("py-yaml-unsafe-load", "app/conf.py", "data = yaml.load(body)", 1),
    ("py-pickle-untrusted", "app/api.py", "obj = pickle.loads(request.get_data())", 1),
    ("py-pickle-untrusted", "app/api.py", "obj = pickle.loads(base64.b64decode(blob))", 1),
    ("py-subprocess-shell", "app/ops.py", 'subprocess.run(f"convert {name} out.png", shell=True)', 1),
    ("py-subprocess-shell", "app/ops.py", 'os.system("rm -rf " + path)', 1),
    ("eval-untrusted", "app/calc.py", 'result = eval(request.args["expr"])', 1),
    ("eval-untrusted", "src/calc.js", "const fn = new Function(req.body.code);", 1),
    # --- reliability
    ("py-http-no-timeout", "app/notify.py", "requests.post(url, json=payload)", 1),
    ("py-http-no-timeout", "app/notify.py", "resp = requests.get(\n    url,\n    headers=h,\n)", 1),
    ("py-http-no-timeout", "app/notify.py", "resp = requests.get(url, timeout=None)", 1),
    ("py-http-no-timeout", "app/notify.py", "body = urllib.request.urlopen(url).read()", 1),
    ("go-http-no-timeout", "client/api.go", "resp, err := http.Get(url)", 1),
    ("go-http-no-timeout", "client/api.go", "client := &http.Client{Transport: tr}", 1),
    ("py-swallowed-exception", "app/jobs.py", "try:\n    run()\nexcept Exception:\n    pass", 3),
    ("py-swallowed-exception", "app/jobs.py", "try:\n    run()\nexcept:  \n    pass", 3),
    ("py-swallowed-exception", "app/jobs.py", "try:\n    run()\nexcept Exception as e: pass", 3),
    ("py-swallowed-exception", "app/jobs.py", "with contextlib.suppress(Exception):\n    run()", 1),
    # P-01: a comment is PR text; it neither ends the pattern's line nor makes a swallow deliberate
    ("py-swallowed-exception", "app/jobs.py", "try:\n    run()\nexcept Exception:  # expected\n    pass", 3),
    (
        "py-swallowed-exception",
        "app/jobs.py",
        "try:\n    run()\nexcept Exception:\n    # best effort: the cache is optional\n    pass",
        3,
    ),
    ("js-empty-catch", "src/job.js", "try { run(); } catch (e) {}", 1),
    ("js-empty-catch", "src/job.ts", "try {\n  run();\n} catch {\n}", 3),
    ("js-empty-catch", "src/job.ts", "fetchAll().catch(() => {});", 1),
    ("js-empty-catch", "src/job.ts", "try {\n  run();\n} catch {  // ok\n}", 3),
    (
        "js-empty-catch",
        "src/job.js",
        "try {\n  run();\n} catch (e) {\n  // optional: ignore missing file\n}",
        3,
    ),
    ("js-empty-catch", "src/job.js", "try { run(); } catch (e) { /* ignore */ }", 1),
    ("go-ignored-error", "svc/x.go", 'n, _ := strconv.Atoi(r.URL.Query().Get("n"))', 1),
    ("go-ignored-error", "svc/x.go", "_ = json.Unmarshal(body, &req)", 1),
    ("go-ignored-error", "svc/x.go", "\ttx.Commit()", 1),
    ("go-ignored-error", "svc/x.go", "\t_ = err", 1),
    ("go-ignored-error", "svc/x.go", "\t_ = err  // handled upstream", 1),
    ("java-empty-catch", "src/Job.java", "try { run(); } catch (IOException e) {}", 1),
    ("java-empty-catch", "src/Job.java", "} catch (Exception e) {\n}", 1),
    ("rb-rescue-nil", "app/jobs/x.rb", "value = Integer(params[:n]) rescue nil", 1),
    ("rb-rescue-nil", "app/jobs/x.rb", "begin\n  run\nrescue => e\nend", 3),
    ("rb-rescue-nil", "app/jobs/x.rb", "begin\n  run\nrescue => e  # fine\nend", 3),
    # comment markers inside strings are string text, not comments
    ("rb-rescue-nil", "app/jobs/x.rb", 'value = Integer("#{params[:n]}") rescue nil', 1),
    (
        "py-query-in-loop",
        "app/views.py",
        "for order in orders:\n    user = User.objects.get(id=order.user_id)",
        2,
    ),
    (
        "py-query-in-loop",
        "app/views.py",
        'for uid in ids:\n    if uid:\n        cur.execute("SELECT 1 FROM t WHERE id = %s", (uid,))',
        3,
    ),
    ("py-query-in-loop", "app/views.py", "users = [session.get(User, i) for i in ids]", 1),
    (
        "js-query-in-loop",
        "src/orders.ts",
        "for (const o of orders) {\n  const u = await db.query('SELECT * FROM u WHERE id = $1', [o.uid]);\n}",
        2,
    ),
    (
        "js-query-in-loop",
        "src/orders.ts",
        "orders.forEach(async (o) => {\n  await User.findByPk(o.userId);\n});",
        2,
    ),
    ("py-blocking-in-async", "app/api.py", "async def handler(req):\n    time.sleep(1)\n    return 1", 2),
    (
        "py-blocking-in-async",
        "app/api.py",
        "async def handler(req):\n    r = requests.get(URL, timeout=3)",
        2,
    ),
    # --- migrations
    ("mig-drop", "migrations/002_cleanup.sql", "ALTER TABLE users DROP COLUMN legacy_id;", 1),
    ("mig-drop", "db/migration/V3__drop.sql", "DROP TABLE audit_log;", 1),
    (
        "mig-drop",
        "app/migrations/0007_remove.py",
        "operations = [\n    migrations.RemoveField(model_name='user', name='legacy'),\n]",
        2,
    ),
    (
        "mig-drop",
        "alembic/versions/abc_drop.py",
        "def upgrade():\n    op.drop_column('users', 'legacy_id')",
        2,
    ),
    (
        "mig-drop",
        "db/migrate/20240101_drop.rb",
        "class DropLegacy < ActiveRecord::Migration[7.1]\n"
        "  def change\n"
        "    remove_column :users, :legacy_id, :integer\n"
        "  end\n"
        "end",
        3,
    ),
    (
        "mig-drop",
        "migrations/20240101_drop.js",
        "exports.up = (knex) => knex.schema.alterTable('users', (t) => {\n  t.dropColumn('legacy_id');\n});",
        2,
    ),
    ("mig-rename", "migrations/003.sql", "ALTER TABLE users RENAME COLUMN name TO full_name;", 1),
    ("mig-rename", "migrations/003.sql", "ALTER TABLE users RENAME TO accounts;", 1),
    (
        "mig-rename",
        "app/migrations/0008_rename.py",
        "migrations.RenameField(model_name='user', old_name='name', new_name='full_name'),",
        1,
    ),
    ("mig-rename", "db/migrate/20240102_rename.rb", "    rename_column :users, :name, :full_name", 1),
    (
        "mig-not-null-no-default",
        "migrations/004.sql",
        "ALTER TABLE users ADD COLUMN tenant_id bigint NOT NULL;",
        1,
    ),
    (
        "mig-not-null-no-default",
        "migrations/004.sql",
        "ALTER TABLE users\n  ADD COLUMN tenant_id bigint NOT NULL,\n  ADD COLUMN note text;",
        2,
    ),
    (
        "mig-not-null-no-default",
        "app/migrations/0009_add.py",
        "migrations.AddField(\n"
        "    model_name='user',\n"
        "    name='tenant',\n"
        "    field=models.IntegerField(),\n"
        "),",
        4,
    ),
    (
        "mig-not-null-no-default",
        "app/migrations/0009_add.py",
        "migrations.AddField(\n"
        "    model_name='user',\n"
        "    # don't backfill (yet): see the ticket\n"
        "    name='tenant',\n"
        "    field=models.IntegerField(),\n"
        "),",
        5,
    ),
    (
        "mig-not-null-no-default",
        "migrations/004.sql",
        "ALTER TABLE users ADD COLUMN tag text NOT NULL CHECK (tag <> '--');",
        1,
    ),
    (
        "mig-not-null-no-default",
        "alembic/versions/x_add.py",
        "op.add_column('users', sa.Column('tenant_id', sa.Integer(), nullable=False))",
        1,
    ),
    (
        "mig-not-null-no-default",
        "db/migrate/20240103_add.rb",
        "    add_column :users, :tenant_id, :integer, null: false",
        1,
    ),
    ("mig-index-not-concurrent", "migrations/005.sql", "CREATE INDEX idx_orders_user ON orders(user_id);", 1),
    (
        "mig-index-not-concurrent",
        "migrations/005.sql",
        "CREATE UNIQUE INDEX\n  idx_users_email ON users (email);",
        1,
    ),
    (
        "mig-index-not-concurrent",
        "alembic/versions/y_idx.py",
        "op.create_index('ix_orders_user', 'orders', ['user_id'])",
        1,
    ),
    ("mig-index-not-concurrent", "db/migrate/20240104_idx.rb", "    add_index :orders, :user_id", 1),
    (
        "mig-index-not-concurrent",
        "migrations/005.sql",
        "-- CREATE TABLE orders (id int);\nCREATE INDEX idx_orders_user ON orders(user_id);",
        2,
    ),
    (
        "mig-fk-no-index",
        "migrations/006.sql",
        "ALTER TABLE orders ADD COLUMN coupon_id bigint REFERENCES coupons(id);",
        1,
    ),
    (
        "mig-fk-no-index",
        "migrations/006.sql",
        "CREATE TABLE items (\n"
        "  id bigserial PRIMARY KEY,\n"
        "  order_id bigint NOT NULL REFERENCES orders(id)\n"
        ");",
        3,
    ),
    (
        "mig-fk-no-index",
        "migrations/006.sql",
        "ALTER TABLE items ADD CONSTRAINT fk_o FOREIGN KEY (order_id) REFERENCES orders(id);",
        1,
    ),
    (
        "mig-fk-no-index",
        "alembic/versions/z.py",
        "op.create_table('items', sa.Column('order_id', sa.Integer, sa.ForeignKey('orders.id')))",
        1,
    ),
]

# (rule id, path, code): similar code that must not be flagged by that rule
CLEAN: list[tuple[str, str, str]] = [
    ("py-sql-format", "app/db.py", 'cur.execute("SELECT * FROM users WHERE id = %s", (uid,))'),
    ("py-sql-format", "app/db.py", 'cur.execute(f"SELECT * FROM {TABLE} WHERE id = %s", (uid,))'),
    ("py-sql-format", "app/db.py", 'msg = f"hello {name}"\ncur.execute(msg)'),
    ("py-sql-format", "app/db.py", 'log.info(f"SELECT took {ms} ms")'),
    ("py-sql-format", "app/db.py", 'session.execute(text("SELECT * FROM t WHERE id = :id"), {"id": uid})'),
    ("py-sql-format", "app/db.py", 'q = "SELECT * FROM t " + "WHERE id = %s"\ncur.execute(q, (uid,))'),
    ("js-sql-template", "src/db.js", "await pool.query('SELECT * FROM users WHERE id = $1', [id]);"),
    ("js-sql-template", "src/db.js", "await prisma.$queryRaw`SELECT * FROM users WHERE id = ${id}`;"),
    ("js-sql-template", "src/db.js", "await db.query(sql`SELECT * FROM users WHERE id = ${id}`);"),
    ("go-sql-format", "db/users.go", 'rows, err := db.Query("SELECT * FROM users WHERE id = $1", id)'),
    ("go-sql-format", "db/users.go", 'msg := fmt.Sprintf("user %s", id)\nlog.Println(msg)'),
    (
        "java-sql-concat",
        "src/Repo.java",
        'PreparedStatement ps = conn.prepareStatement("SELECT * FROM u WHERE id = ?");',
    ),
    ("rb-sql-interpolation", "app/models/user.rb", 'User.where("name = ?", params[:name])'),
    ("rb-sql-interpolation", "app/models/user.rb", "User.where(name: params[:name])"),
    ("rb-sql-interpolation", "app/models/user.rb", 'User.where("#{table_name}.active = ?", true)'),
    ("weak-password-hash", "app/auth.py", "digest = hashlib.sha256(file_bytes).hexdigest()"),
    ("weak-password-hash", "app/auth.py", "h = hashlib.sha256(password_reset_token.encode()).hexdigest()"),
    (
        "weak-password-hash",
        "app/auth.py",
        "hashed = hashlib.pbkdf2_hmac('sha256', password.encode(), salt, 600_000)",
    ),
    ("jwt-unverified", "app/auth.py", 'claims = jwt.decode(token, key, algorithms=["HS256"])'),
    (
        "jwt-unverified",
        "src/auth.js",
        "const header = jwt.decode(token, { complete: true });\njwt.verify(token, key);",
    ),
    ("py-jwt-algorithms", "app/auth.py", 'claims = jwt.decode(token, key, algorithms=["RS256"])'),
    ("jwt-none-alg", "app/auth.py", 'jwt.decode(token, key, algorithms=["HS256"])'),
    ("hardcoded-secret", "app/config.py", 'DB_PASSWORD = os.environ["DB_PASSWORD"]'),
    ("hardcoded-secret", "app/config.py", 'DB_PASSWORD = ""'),
    ("hardcoded-secret", "app/config.py", 'API_KEY = "changeme"'),
    ("hardcoded-secret", "app/config.py", 'PASSWORD_ENV = "DB_PASSWORD"'),
    ("hardcoded-secret", "app/forms.py", 'password = forms.CharField(label="Password")'),
    ("hardcoded-secret", "app/forms.py", 'password_field = "password"'),
    ("hardcoded-secret", "app/forms.py", 'if password == "":'),
    ("hardcoded-secret", "app/config.py", 'SECRET_KEY = "${SECRET_KEY}"'),
    ("hardcoded-secret", "app/config.py", 'DATABASE_URL = "postgres://app:${DB_PASSWORD}@db/app"'),
    ("hardcoded-secret", "src/i18n.ts", "export const labels = { password: 'Confirm password' };"),
    ("hardcoded-secret", "tests/test_login.py", 'PASSWORD = "s3cr3t-Pa55"'),
    ("private-key", "app/keys.py", 'PUBLIC = "-----BEGIN PUBLIC KEY-----"'),
    ("private-key", "tests/fixtures/key.pem", "-----BEGIN RSA PRIVATE KEY-----"),
    ("known-token-format", "docs/aws.md", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE"),
    ("secret-in-log", "app/auth.py", 'logger.info("login user=%s", user.id)'),
    ("secret-in-log", "app/auth.py", 'logger.info("token length %d", len(token))'),
    ("secret-in-log", "app/auth.py", 'logger.info("token prefix %s", token[:4])'),
    ("secret-in-log", "app/auth.py", 'logger.info("password reset requested for %s", email)'),
    ("secret-in-log", "app/auth.py", 'logger.info("tokens used", max_tokens=max_tokens)'),
    ("secret-in-log", "app/auth.py", 'logger.info("has token: %s", token is not None)'),
    ("timing-unsafe-compare", "app/hooks.py", "if hmac.compare_digest(signature, expected):"),
    ("timing-unsafe-compare", "app/hooks.py", "if token is None or token == '':"),
    ("timing-unsafe-compare", "app/hooks.py", 'if token_type == "bearer":'),
    ("timing-unsafe-compare", "app/hooks.py", "if len(signature) != 64:"),
    ("timing-unsafe-compare", "src/hooks.ts", "if (token === undefined) return;"),
    ("insecure-random-secret", "app/tokens.py", "token = secrets.token_urlsafe(32)"),
    ("insecure-random-secret", "app/tokens.py", "delay = random.uniform(0, 1)"),
    ("insecure-random-secret", "app/tokens.py", "def pick_server():\n    return random.choice(servers)"),
    ("cors-wildcard-credentials", "app/main.py", 'app.add_middleware(CORSMiddleware, allow_origins=["*"])'),
    (
        "cors-wildcard-credentials",
        "app/main.py",
        'app.add_middleware(CORSMiddleware, allow_origins=["https://a.example"], allow_credentials=True)',
    ),
    (
        "cors-wildcard-credentials",
        "app/__init__.py",
        'CORS(app, origins=["https://a.example"], supports_credentials=True)',
    ),
    (
        "cors-wildcard-credentials",
        "src/app.js",
        "app.use(cors({ origin: 'https://a.example', credentials: true }));",
    ),
    ("debug-enabled", "app/main.py", 'app.run(debug=os.environ.get("FLASK_DEBUG") == "1")'),
    ("debug-enabled", "mysite/settings/dev.py", "DEBUG = True"),
    ("debug-enabled", "app/handlers.py", "DEBUG = True"),
    ("debug-enabled", "tests/test_app.py", "app.run(debug=True)"),
    ("tls-verify-disabled", "app/client.py", "r = requests.get(url, timeout=5, verify=CA_BUNDLE)"),
    ("tls-verify-disabled", "tests/test_client.py", "requests.get(url, verify=False)"),
    ("py-yaml-unsafe-load", "app/conf.py", "data = yaml.load(stream, Loader=yaml.SafeLoader)"),
    ("py-yaml-unsafe-load", "app/conf.py", "data = yaml.safe_load(stream)"),
    ("py-pickle-untrusted", "app/cache.py", "obj = pickle.loads(local_bytes)"),
    ("py-subprocess-shell", "app/ops.py", 'subprocess.run(["convert", name, "out.png"], check=True)'),
    ("py-subprocess-shell", "app/ops.py", 'subprocess.run(f"convert {name} out.png".split())'),
    ("eval-untrusted", "app/calc.py", "value = ast.literal_eval(text)"),
    ("eval-untrusted", "app/calc.py", 'result = eval("1 + 2")'),
    ("py-http-no-timeout", "app/notify.py", "requests.post(url, json=payload, timeout=10)"),
    ("py-http-no-timeout", "app/notify.py", "requests.post(url, **kwargs)"),
    ("py-http-no-timeout", "app/notify.py", "httpx.post(url, json=payload)"),
    ("py-http-no-timeout", "app/notify.py", "resp = requests.get(\n    url,\n    timeout=(3, 10),\n)"),
    ("py-http-no-timeout", "tests/test_notify.py", "requests.post(url, json=payload)"),
    ("go-http-no-timeout", "client/api.go", "client := &http.Client{Timeout: 10 * time.Second}"),
    (
        "go-http-no-timeout",
        "client/api.go",
        "client := &http.Client{\n\tTransport: tr,\n\tTimeout:   5 * time.Second,\n}",
    ),
    ("go-http-no-timeout", "client/api_test.go", "resp, err := http.Get(srv.URL)"),
    ("py-swallowed-exception", "app/jobs.py", "try:\n    run()\nexcept KeyError:\n    pass"),
    (
        "py-swallowed-exception",
        "app/jobs.py",
        "try:\n    run()\nexcept Exception:\n    log.exception('run failed')",
    ),
    ("js-empty-catch", "src/job.js", "try { run(); } catch (e) { log(e); }"),
    ("go-ignored-error", "svc/x.go", "n, err := strconv.Atoi(s)\nif err != nil {\n\treturn err\n}"),
    ("go-ignored-error", "svc/x.go", "defer tx.Rollback()"),
    ("go-ignored-error", "svc/x.go", "if err := tx.Commit(); err != nil {"),
    ("java-empty-catch", "src/Job.java", "} catch (InterruptedException ignored) {}"),
    ("java-empty-catch", "src/Job.java", '} catch (IOException e) { log.warn("x", e); }'),
    ("rb-rescue-nil", "app/jobs/x.rb", "begin\n  run\nrescue Timeout::Error => e\n  retry_later(e)\nend"),
    (
        "py-query-in-loop",
        "app/views.py",
        "users = User.objects.filter(id__in=ids)\nfor u in users:\n    print(u.name)",
    ),
    ("py-query-in-loop", "app/views.py", "for u in users:\n    total += u.balance\nUser.objects.get(id=1)"),
    (
        "js-query-in-loop",
        "src/orders.ts",
        "const users = await db.query('SELECT * FROM u WHERE id = ANY($1)', [ids]);\n"
        "for (const u of users) {\n"
        "  total += u.n;\n"
        "}",
    ),
    ("py-blocking-in-async", "app/api.py", "async def handler(req):\n    await asyncio.sleep(1)"),
    ("py-blocking-in-async", "app/api.py", "def worker():\n    time.sleep(1)"),
    ("mig-drop", "migrations/002.down.sql", "ALTER TABLE users DROP COLUMN tenant_id;"),
    ("mig-drop", "alembic/versions/abc.py", "def downgrade():\n    op.drop_column('users', 'tenant_id')"),
    ("mig-drop", "db/migrate/20240101_add.rb", "  def down\n    remove_column :users, :tenant_id\n  end"),
    ("mig-drop", "migrations/001.sql", "-- +goose Down\nDROP TABLE users;"),
    ("mig-drop", "app/db.sql", "DROP TABLE scratch;"),
    (
        "mig-drop",
        "app/migrations/0003.py",
        "migrations.RunSQL('CREATE TABLE t (id int)', reverse_sql='DROP TABLE t')",
    ),
    ("mig-rename", "migrations/003.sql", "ALTER INDEX idx_a RENAME TO idx_b;"),
    (
        "mig-not-null-no-default",
        "migrations/004.sql",
        "ALTER TABLE users ADD COLUMN tenant_id bigint NOT NULL DEFAULT 0;",
    ),
    (
        "mig-not-null-no-default",
        "migrations/004.sql",
        "CREATE TABLE t (id int);\nALTER TABLE t ADD COLUMN n int NOT NULL;",
    ),
    (
        "mig-not-null-no-default",
        "migrations/004.sql",
        "ALTER TABLE users ADD CONSTRAINT c CHECK (n IS NOT NULL);",
    ),
    (
        "mig-not-null-no-default",
        "app/migrations/0009_add.py",
        "migrations.AddField(model_name='user', name='tenant', field=models.IntegerField(null=True)),",
    ),
    (
        "mig-not-null-no-default",
        "app/migrations/0009_add.py",
        "migrations.AddField(model_name='user', name='n', field=models.IntegerField(default=0)),",
    ),
    (
        "mig-not-null-no-default",
        "alembic/versions/x_add.py",
        "op.add_column('users', sa.Column('n', sa.Integer(), nullable=False, server_default='0'))",
    ),
    (
        "mig-not-null-no-default",
        "db/migrate/20240103_add.rb",
        "    add_column :users, :n, :integer, null: false, default: 0",
    ),
    (
        "mig-index-not-concurrent",
        "migrations/005.sql",
        "CREATE INDEX CONCURRENTLY idx_orders_user ON orders(user_id);",
    ),
    (
        "mig-index-not-concurrent",
        "migrations/005.sql",
        "CREATE TABLE orders (id int, user_id int);\nCREATE INDEX idx_orders_user ON orders(user_id);",
    ),
    (
        "mig-index-not-concurrent",
        "migrations/005.sql",
        "CREATE TABLE `t` (id int) ENGINE=InnoDB;\nCREATE INDEX i ON u(x);",
    ),
    ("mig-index-not-concurrent", "app/queries.sql", "CREATE INDEX idx_orders_user ON orders(user_id);"),
    (
        "mig-index-not-concurrent",
        "alembic/versions/y_idx.py",
        "op.create_index('ix', 'orders', ['user_id'], postgresql_concurrently=True)",
    ),
    (
        "mig-index-not-concurrent",
        "db/migrate/20240104_idx.rb",
        "    add_index :orders, :user_id, algorithm: :concurrently",
    ),
    (
        "mig-fk-no-index",
        "migrations/006.sql",
        "ALTER TABLE orders ADD COLUMN coupon_id bigint REFERENCES coupons(id);\n"
        "CREATE INDEX CONCURRENTLY ix_coupon ON orders (coupon_id);",
    ),
    (
        "mig-fk-no-index",
        "migrations/006.sql",
        "CREATE TABLE t (\n  user_id bigint PRIMARY KEY REFERENCES users(id)\n);",
    ),
    # P-01: the pattern only inside a comment is no finding
    ("py-sql-format", "app/db.py", '# cursor.execute(f"SELECT {x}")'),
    ("py-sql-format", "app/db.py", 'x = 1  # cur.execute(f"SELECT * FROM t WHERE id = {uid}")'),
    ("js-sql-template", "src/db.js", "// await pool.query(`SELECT * FROM users WHERE id = ${id}`);"),
    ("js-sql-template", "src/db.ts", "/*\nawait pool.query(`SELECT * FROM users WHERE id = ${id}`);\n*/"),
    (
        "go-sql-format",
        "db/users.go",
        'n := 1 /* db.Query(fmt.Sprintf("SELECT * FROM u WHERE id = %s", id)) */',
    ),
    ("java-sql-concat", "src/Repo.java", '// stmt.executeQuery("SELECT * FROM u WHERE id = " + id);'),
    ("rb-sql-interpolation", "app/models/user.rb", "# User.where(\"name = '#{params[:name]}'\")"),
    ("rb-rescue-nil", "app/jobs/x.rb", "=begin\nvalue = Integer(params[:n]) rescue nil\n=end"),
    ("go-ignored-error", "svc/x.go", "/*\n_ = json.Unmarshal(body, &req)\n*/"),
    ("java-empty-catch", "src/Job.java", "// try { run(); } catch (IOException e) {}"),
    ("hardcoded-secret", "app/config.py", 'x = 1  # DB_PASSWORD = "s3cr3t-Pa55"'),
    ("py-http-no-timeout", "app/notify.py", "requests.post(url, timeout=10)  # was requests.post(url)"),
    ("tls-verify-disabled", "src/client.js", "const agent = new https.Agent(); // rejectUnauthorized: false"),
    ("mig-drop", "migrations/002_cleanup.sql", "-- ALTER TABLE users DROP COLUMN legacy_id;\nSELECT 1;"),
    ("mig-drop", "migrations/002_cleanup.sql", "SELECT 1; /* DROP TABLE audit_log; */"),
    # ...and inside a string literal, a comment marker starts no comment
    ("py-http-no-timeout", "app/notify.py", 'requests.get("http://x/#a", timeout=5)  # requests.get(u)'),
    ("py-http-no-timeout", "app/notify.py", 'requests.get(\n    "http://x/#a", timeout=5,\n)'),
]

FLAG += UNICODE_FLAG
CLEAN += UNICODE_CLEAN


def _case_id(case: tuple[str, ...]) -> str:
    return f"{case[0]}:{case[1]}"


@pytest.mark.parametrize("case", FLAG, ids=_case_id)
def test_rule_flags(case: tuple[str, str, str, int]) -> None:
    rule_id, path, code, line = case
    found = [f for f in findings(path, code) if f.source == rule_id]
    assert [f.line for f in found] == [line], (
        f"{rule_id} on {code!r}: {[(f.line, f.evidence) for f in found]}"
    )
    expected = code.split("\n")[line - 1].rstrip()
    assert found[0].evidence == expected


@pytest.mark.parametrize("case", CLEAN, ids=_case_id)
def test_rule_leaves_clean_code_alone(case: tuple[str, str, str]) -> None:
    rule_id, path, code = case
    assert not {r for r, _ in hits(path, code) if r == rule_id}


def test_every_rule_has_flag_and_clean_cases() -> None:
    flagged = {c[0] for c in FLAG}
    clean = {c[0] for c in CLEAN}
    ids = {r.id for r in RULES}
    assert ids - flagged == set()
    assert ids - clean == set()
    assert flagged | clean <= ids
