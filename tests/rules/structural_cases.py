# ruff: noqa: E501 - code samples read best on one line
"""Cases for the structural rules (bot/rules/{injection,tokens,authz,orm,removed}.py).

FLAG/CLEAN use the format of tests/rules/test_cases.py (every line added) and are appended to its lists, so
the P-01 comment property runs over them too. The diff-aware rules need base lines: REMOVED_FLAG and
REMOVED_CLEAN are marked diffs ("+" added, "-" removed, " " context) of a modified file, with the 1-based
head line the finding anchors on.
"""

from __future__ import annotations

FLAG: list[tuple[str, str, str, int]] = [
    # --- SQL built from non-constant text: identifiers, sort clauses, fragments, every language
    ("sql-built-query", "app/views.py", "qs = Item.objects.extra(where=[\"name LIKE '%%%s%%'\" % term])", 1),
    ("sql-built-query", "app/controllers/items_controller.rb", "@items = Item.order(params[:sort])", 1),
    ("sql-built-query", "svc/items.go", 'db.Order(c.Query("sort")).Find(&items)', 1),
    ("sql-built-query", "src/items.ts", "order: sequelize.literal(`${req.query.sort} DESC`),", 1),
    # --- token verification
    (
        "jwt-weakened-verification",
        "app/auth.py",
        'claims = jwt.decode(tok, key, algorithms=["RS256"], options={"verify_exp": False})',
        1,
    ),
    (
        "jwt-weakened-verification",
        "app/auth.py",
        'claims = jwt.decode(tok, key, algorithms=[jwt.get_unverified_header(tok)["alg"]])',
        1,
    ),
    ("jwt-weakened-verification", "app/auth.py", "claims = jwt.get_unverified_claims(token)", 1),
    (
        "jwt-weakened-verification",
        "app/auth.py",
        "info = id_token.verify_oauth2_token(tok, requests.Request())",
        1,
    ),
    (
        "jwt-weakened-verification",
        "src/auth.js",
        "const p = jwt.verify(t, secret, { ignoreExpiration: true });",
        1,
    ),
    ("jwt-weakened-verification", "src/auth.ts", "const p = jwt.verify(token, publicKey);", 1),
    ("jwt-weakened-verification", "src/auth.ts", "const t = await client.verifyIdToken({ idToken });", 1),
    (
        "jwt-weakened-verification",
        "auth/jwt.go",
        "tok, err := jwt.Parse(s, func(t *jwt.Token) (interface{}, error) {\n\treturn key, nil\n})",
        1,
    ),
    ("jwt-weakened-verification", "auth/jwt.go", "p := jwt.NewParser(jwt.WithoutClaimsValidation())", 1),
    ("jwt-weakened-verification", "lib/auth.rb", "JWT.decode(t, key, true, { verify_expiration: false })", 1),
    (
        "jwt-weakened-verification",
        "src/main/java/app/JwtFilter.java",
        "class F {\n  Claims c(String t) { return (Claims) Jwts.parser().setSigningKey(key).parse(t).getBody(); }\n}",
        2,
    ),
    ("jwt-weakened-verification", "lib/auth.rb", "payload, _ = JWT.decode(t, key, true)", 1),
    (
        "jwt-weakened-verification",
        "src/main/java/app/Auth.java",
        "class A {\n  Claims c(String t) { return Jwts.parser().setSigningKey(k).parseClaimsJwt(t).getBody(); }\n}",
        2,
    ),
    # --- authorization: a new handler without the guard its siblings have
    (
        "authz-missing-guard",
        "app/views.py",
        '@app.route("/a")\n@login_required\ndef a():\n    return "a"\n\n'
        '@app.route("/b")\n@login_required\ndef b():\n    return "b"\n\n'
        '@app.route("/c")\n@login_required\ndef c():\n    return "c"\n\n'
        '@app.route("/export")\ndef export():\n    return dump()',
        16,
    ),
    # --- IDOR
    (
        "authz-unscoped-lookup",
        "billing/views.py",
        "class InvoiceList(APIView):\n    def get(self, request):\n"
        "        return Invoice.objects.filter(account__owner=request.user)\n\n"
        "class InvoiceDetail(APIView):\n    def get(self, request, pk):\n        return Invoice.objects.get(pk=pk)",
        7,
    ),
    (
        "authz-unscoped-lookup",
        "app/views.py",
        "def a(request, pk):\n    return Doc.objects.get(pk=pk, owner=request.user)\n\n"
        "def b(request, pk):\n    return Doc.objects.get(pk=pk, owner=request.user)\n\n"
        "def c(request, pk):\n    return Doc.objects.get(pk=pk)",
        8,
    ),
    # --- mass assignment
    ("mass-assignment", "app/views.py", "user = User.objects.create(**request.data)", 1),
    ("mass-assignment", "app/views.py", "Profile.objects.filter(pk=pk).update(**request.POST.dict())", 1),
    ("mass-assignment", "src/users.js", "const user = await User.create(req.body);", 1),
    ("mass-assignment", "src/users.ts", "Object.assign(user, req.body);", 1),
    (
        "mass-assignment",
        "app/controllers/users_controller.rb",
        "@user.update(params.require(:user).permit!)",
        1,
    ),
    (
        "mass-assignment",
        "app/serializers.py",
        "class UserSerializer(serializers.ModelSerializer):\n    class Meta:\n        model = User\n"
        '        fields = "__all__"',
        4,
    ),
    # --- state change through GET
    (
        "state-change-on-get",
        "app/views.py",
        '@app.route("/items/<int:id>/delete")\ndef delete_item(id):\n'
        "    db.session.delete(Item.query.get_or_404(id))\n    db.session.commit()",
        3,
    ),
    (
        "state-change-on-get",
        "src/routes.js",
        "router.get('/items/:id/remove', auth, async (req, res) => {\n"
        "  await Item.destroy({ where: { id: req.params.id } });\n  res.redirect('/');\n});",
        2,
    ),
    ("state-change-on-get", "config/routes.rb", "get 'items/:id/delete', to: 'items#destroy'", 1),
    (
        "state-change-on-get",
        "app/account.py",
        "def _purge(user):\n    db.session.delete(user)\n\n"
        '@bp.route("/account/delete", methods=["GET"])\n@login_required\ndef delete_account():\n'
        "    _purge(current_user)\n    return redirect('/')",
        7,
    ),
    # --- N+1 through relations
    (
        "orm-relation-in-loop",
        "app/views.py",
        "for order in Order.objects.filter(paid=True):\n    total += order.lines.count()",
        2,
    ),
    (
        "orm-relation-in-loop",
        "app/serializers.py",
        "class PostSerializer(serializers.ModelSerializer):\n    open = serializers.SerializerMethodField()\n\n"
        "    def get_open(self, obj):\n"
        "        return obj.comments.filter(open=True).exists()",
        5,
    ),
    ("orm-relation-in-loop", "app/views/posts.rb", "Post.all.each do |p|\n  n += p.comments.count\nend", 2),
    # --- password hashes out
    (
        "password-hash-exposed",
        "app/views.py",
        'return jsonify({"id": u.id, "password_hash": u.password_hash})',
        1,
    ),
    ("password-hash-exposed", "src/users.js", "res.json({ id: u.id, password: u.password });", 1),
    (
        "password-hash-exposed",
        "app/serializers.py",
        "class UserSerializer(serializers.ModelSerializer):\n    class Meta:\n        model = User\n"
        '        fields = ["id", "email", "password"]',
        4,
    ),
    (
        "password-hash-exposed",
        "models/user.go",
        'type User struct {\n\tPasswordHash string `json:"password_hash"`\n}',
        2,
    ),
    (
        "password-hash-exposed",
        "users/serializers.py",
        "class UserSerializer(serializers.ModelSerializer):\n    class Meta:\n        model = get_user_model()\n"
        '        fields = "__all__"',
        4,
    ),
    # --- DB errors masked
    (
        "db-error-masked",
        "app/views.py",
        "def get(pk):\n    try:\n        return Item.objects.get(pk=pk)\n    except Exception:\n        raise Http404",
        4,
    ),
    (
        "db-error-masked",
        "src/items.js",
        "try {\n  item = await Item.findByPk(id);\n} catch (e) {\n  return res.status(404).end();\n}",
        3,
    ),
    (
        "db-error-masked",
        "svc/items.go",
        "func h(w http.ResponseWriter, r *http.Request) {\n\terr := db.QueryRow(q, id).Scan(&it)\n"
        "\tif err != nil {\n\t\thttp.NotFound(w, r)\n\t\treturn\n\t}\n}",
        3,
    ),
]

# Cases the line rules (bot/rules/sql.py) already report on the same line: the structural finding folds into
# theirs, one finding per line (tests/rules/test_structural.py).
ALSO_LINE_RULES: list[tuple[str, str, str, int]] = [
    (
        "sql-built-query",
        "app/views.py",
        'def listing(request):\n    sort = request.GET.get("sort", "id")\n'
        '    cursor.execute("SELECT id FROM items ORDER BY " + sort)',
        3,
    ),
    (
        "sql-built-query",
        "app/repo.py",
        'rows = session.execute(text(f"SELECT * FROM t ORDER BY {column}"))',
        1,
    ),
    ("sql-built-query", "app/models/item.rb", 'scope :sorted, ->(s) { order("#{s} DESC") }', 1),
    ("sql-built-query", "app/controllers/items_controller.rb", "Item.where(\"data->>'k' = '#{key}'\")", 1),
    (
        "sql-built-query",
        "svc/items.go",
        'q := "SELECT id FROM items ORDER BY " + sortCol\nrows, err := db.QueryContext(ctx, q)',
        1,
    ),
    (
        "sql-built-query",
        "src/items.js",
        "const rows = await knex.raw(`SELECT * FROM t WHERE name ~ '${re}'`);",
        1,
    ),
    (
        "sql-built-query",
        "src/items.ts",
        "await prisma.$queryRawUnsafe(`SELECT * FROM t WHERE id = ${id}`);",
        1,
    ),
    (
        "sql-built-query",
        "src/main/java/app/ItemRepo.java",
        "class R {\n  List<Item> f(@RequestParam String sort) {\n"
        '    return em.createQuery("SELECT i FROM Item i ORDER BY i." + sort).getResultList();\n  }\n}',
        3,
    ),
]

CLEAN: list[tuple[str, str, str]] = [
    # seen on real repositories (microblog, golang-gin-realworld, node-express-realworld)
    (
        "state-change-on-get",
        "app/main/routes.py",
        "@bp.route('/messages')\n@login_required\ndef messages():\n"
        "    current_user.last_message_read_time = now()\n    db.session.commit()\n    return render()",
    ),
    (
        "password-hash-exposed",
        "users/validators.go",
        'type UserModelValidator struct {\n\tPassword string `form:"password" json:"password" binding:"exists,min=8"`\n}',
    ),
    (
        "authz-missing-guard",
        "app/api/users.py",
        "@bp.route('/users/<int:id>', methods=['GET'])\n@token_auth.login_required\ndef get_user(id):\n    return 1\n\n"
        "@bp.route('/users', methods=['GET'])\n@token_auth.login_required\ndef get_users():\n    return 2\n\n"
        "@bp.route('/users/<int:id>/followers', methods=['GET'])\n@token_auth.login_required\ndef followers(id):\n"
        "    return 3\n\n@bp.route('/users', methods=['POST'])\ndef create_user():\n    return 4",
    ),
    (
        "authz-unscoped-lookup",
        "routes/api/articles.js",
        "router.param('comment', function(req, res, next, id) {\n  Comment.findById(id).then(next);\n});\n"
        "router.post('/', auth.required, function(req, res) {\n  User.findById(req.payload.id).then(done);\n});",
    ),
    ("sql-built-query", "app/views.py", 'cursor.execute("SELECT id FROM items WHERE id = %s", [pk])'),
    ("sql-built-query", "app/views.py", 'cursor.execute("SELECT id FROM " + TABLE + " WHERE id = %s", [pk])'),
    (
        "sql-built-query",
        "app/views.py",
        'cursor.execute(f"SELECT * FROM t WHERE id IN ({placeholders})", ids)',
    ),
    ("sql-built-query", "app/views.py", 'msg = "select " + name  # not a query sink\nlog.info(msg)'),
    ("sql-built-query", "app/controllers/items_controller.rb", 'Item.where("name = ?", params[:name])'),
    ("sql-built-query", "app/controllers/items_controller.rb", "Item.order(created_at: :desc)"),
    ("sql-built-query", "svc/items.go", 'db.Where("name = ?", c.Query("name")).Find(&items)'),
    (
        "sql-built-query",
        "svc/items.go",
        'q := fmt.Sprintf("SELECT * FROM t LIMIT %d", n)\nrows, _ := db.Query(q)',
    ),
    ("sql-built-query", "src/items.js", "app.get(`/items/${id}`, handler);"),
    ("sql-built-query", "src/items.js", "const rows = await knex.raw('SELECT * FROM t WHERE id = ?', [id]);"),
    (
        "jwt-weakened-verification",
        "app/auth.py",
        'c = jwt.decode(t, key, algorithms=["RS256"], audience="api")',
    ),
    ("jwt-weakened-verification", "src/auth.ts", "jwt.verify(token, publicKey, { algorithms: ['RS256'] });"),
    (
        "jwt-weakened-verification",
        "auth/jwt.go",
        "tok, err := jwt.Parse(s, func(t *jwt.Token) (interface{}, error) {\n"
        "\tif _, ok := t.Method.(*jwt.SigningMethodRSA); !ok {\n\t\treturn nil, errBad\n\t}\n"
        "\treturn key, nil\n})",
    ),
    ("jwt-weakened-verification", "lib/auth.rb", "JWT.decode(t, key, true, { algorithm: 'RS256' })"),
    (
        "authz-missing-guard",
        "app/views.py",
        '@app.route("/a")\n@login_required\ndef a():\n    return "a"\n\n'
        '@app.route("/b")\n@login_required\ndef b():\n    return "b"\n\n'
        '@app.route("/login")\ndef login():\n    return form()',
    ),
    (
        "authz-missing-guard",
        "app/views.py",
        '@app.route("/a")\ndef a():\n    return "a"\n\n@app.route("/b")\n@login_required\ndef b():\n    return "b"\n\n'
        '@app.route("/c")\ndef c():\n    return "c"',
    ),
    (
        "authz-unscoped-lookup",
        "app/views.py",
        "def a(request, pk):\n    return Doc.objects.get(pk=pk, owner=request.user)\n\n"
        "def c(request, pk):\n    return Doc.objects.get(pk=pk, owner=request.user)",
    ),
    ("mass-assignment", "app/views.py", "user = User.objects.create(**serializer.validated_data)"),
    ("mass-assignment", "src/users.js", "const user = await User.create({ name: req.body.name });"),
    (
        "mass-assignment",
        "app/controllers/users_controller.rb",
        "@user.update(params.require(:user).permit(:name))",
    ),
    (
        "state-change-on-get",
        "app/views.py",
        '@app.route("/items/<int:id>")\ndef show(id):\n    return Item.query.get(id)',
    ),
    (
        "state-change-on-get",
        "app/views.py",
        '@app.route("/items/<int:id>/delete", methods=["POST"])\ndef delete_item(id):\n'
        "    db.session.delete(Item.query.get_or_404(id))",
    ),
    (
        "state-change-on-get",
        "src/routes.js",
        "router.get('/x', (req, res) => { cache.delete(k); res.end(); });",
    ),
    (
        "state-change-on-get",
        "app/account.py",
        "def _load(user):\n    return db.session.get(User, user)\n\n"
        '@bp.route("/account", methods=["GET"])\ndef account():\n    return _load(current_user)',
    ),
    (
        "orm-relation-in-loop",
        "app/views.py",
        'for order in Order.objects.prefetch_related("lines"):\n    total += order.lines.count()',
    ),
    ("orm-relation-in-loop", "app/views.py", "for order in orders_list:\n    total += order.lines.count()"),
    (
        "orm-relation-in-loop",
        "app/migrations/0007_backfill.py",
        'for code, name in {"a": "A"}.items():\n    for c in Country.objects.filter(code=code):\n'
        "        c.regions.update(name=name)",
    ),
    (
        "orm-relation-in-loop",
        "app/views/posts.rb",
        "Post.includes(:comments).each do |p|\n  n += p.comments.size\nend",
    ),
    ("password-hash-exposed", "app/views.py", 'return jsonify({"id": u.id, "email": u.email})'),
    ("password-hash-exposed", "app/views.py", 'user.set_password(data["password"])'),
    ("password-hash-exposed", "models/user.go", 'type User struct {\n\tPasswordHash string `json:"-"`\n}'),
    (
        "password-hash-exposed",
        "app/serializers.py",
        "class UserSerializer(serializers.ModelSerializer):\n    class Meta:\n        model = User\n"
        '        fields = ["id", "password"]\n        extra_kwargs = {"password": {"write_only": True}}',
    ),
    (
        "db-error-masked",
        "app/views.py",
        "def get(pk):\n    try:\n        return Item.objects.get(pk=pk)\n    except Item.DoesNotExist:\n"
        "        raise Http404",
    ),
    (
        "db-error-masked",
        "svc/items.go",
        "func h(w http.ResponseWriter, r *http.Request) {\n\terr := db.QueryRow(q, id).Scan(&it)\n"
        "\tif errors.Is(err, sql.ErrNoRows) {\n\t\thttp.NotFound(w, r)\n\t\treturn\n\t}\n"
        "\tif err != nil {\n\t\thttp.NotFound(w, r)\n\t}\n}",
    ),
]

# (rule id, path, marked diff of a modified file, 1-based head line of the finding)
REMOVED_FLAG: list[tuple[str, str, str, int]] = [
    (
        "removed-guard-clause",
        "jwt/algorithms.py",
        " def prepare_key(self, key):\n     key = force_bytes(key)\n-    if any(s in key for s in invalid):\n"
        '-        raise InvalidKeyError("asymmetric key used as an HMAC secret")\n     return key',
        3,
    ),
    (
        "removed-guard-clause",
        "lib/verify.js",
        " function verify(alg, key) {\n-  if (alg === 'none' && key) throw new Error('bad');\n   return check(alg, key);\n }",
        2,
    ),
    (
        "removed-validation",
        "django/db/models/sql/query.py",
        " def add_annotation(self, annotation, alias):\n-    self.check_alias(alias)\n"
        "     self.annotations[alias] = annotation",
        2,
    ),
    (
        "removed-rate-limit",
        "app/views.py",
        ' @app.route("/login", methods=["POST"])\n-@limiter.limit("5/minute")\n def login():\n     return auth()',
        2,
    ),
    (
        "removed-auth-check",
        "app/views.py",
        " class Orders(APIView):\n-    permission_classes = [IsAuthenticated]\n+    renderer_classes = [JSONRenderer]\n"
        "     def get(self, request):\n         return Response(list_orders())",
        2,
    ),
    (
        "removed-auth-check",
        "app/controllers/orders_controller.rb",
        " class OrdersController < ApplicationController\n   def show\n-    authorize @order\n"
        "     render json: @order\n   end\n end",
        3,
    ),
    (
        "removed-auth-check",
        "src/routes.js",
        "-router.delete('/users/:id', requireAdmin, removeUser);\n+router.delete('/users/:id', removeUser);",
        1,
    ),
    (
        "removed-eager-load",
        "app/views.py",
        " def orders(request):\n-    qs = Order.objects.select_related('customer').all()\n"
        "+    qs = Order.objects.all()\n     return render(request, 't.html', {'orders': qs})",
        2,
    ),
    (
        "removed-cache-privacy",
        "app/views.py",
        ' def me(request):\n     resp = JsonResponse(profile(request.user))\n-    resp["Cache-Control"] = "private, no-store"\n'
        "     return resp",
        3,
    ),
    (
        "removed-account-check",
        "app/auth.py",
        " def login(user, password):\n-    if not user.is_active:\n-        raise Disabled()\n"
        "     return check(user, password)",
        2,
    ),
    (
        "removed-validation",
        "app/views.py",
        " def update(request):\n     form = ProfileForm(request.POST)\n-    form.full_clean()\n     form.save()",
        3,
    ),
]

REMOVED_CLEAN: list[tuple[str, str, str]] = [
    # the guard is rewritten, not removed: the new one is in the head
    (
        "removed-guard-clause",
        "jwt/algorithms.py",
        " def prepare_key(self, key):\n-    if any(s in key for s in bad):\n-        raise InvalidKeyError()\n"
        "+    if is_asymmetric(key):\n+        raise InvalidKeyError()\n     return key",
    ),
    # an if/else is a choice, not a guard
    (
        "removed-guard-clause",
        "app/x.py",
        " def f(v):\n-    if v:\n-        raise E()\n-    else:\n-        v = 1\n     return v",
    ),
    # the check is still there, rewritten on the same line
    (
        "removed-account-check",
        "app/auth.py",
        " def login(user, password):\n-    if not user.is_active:\n+    if not user.is_active or user.locked:\n"
        "         raise Disabled()",
    ),
    (
        "removed-validation",
        "app/views.py",
        " def update(request):\n-    form.full_clean()\n+    form.full_clean(exclude=['slug'])\n     form.save()",
    ),
    # a log message that mentions the header is not the header
    (
        "removed-cache-privacy",
        "app/views.py",
        ' def me(request):\n-    log.info("set Cache-Control")\n     return resp',
    ),
    # a comment that names a safeguard is not a safeguard
    (
        "removed-rate-limit",
        "app/views.py",
        " def login():\n-    # TODO: rate_limit(request)\n     return auth()",
    ),
    # moved inside the same function
    (
        "removed-eager-load",
        "app/views.py",
        " def orders(request):\n-    qs = Order.objects.select_related('customer')\n"
        "+    qs = Order.objects.select_related('customer').filter(open=True)\n     return qs",
    ),
    # the whole view went away: a removal, not a safeguard taken out
    (
        "removed-auth-check",
        "app/views.py",
        " import x\n-@login_required\n-def old_view(request):\n-    return 1\n+def other():\n+    return 2",
    ),
    # the eager load moved into a new helper of the same file (django-oscar 3.2.2 -> 3.2.4)
    (
        "removed-eager-load",
        "src/catalogue/attributes.py",
        "+class Cache:\n+    def values(self):\n+        return self.product.values().select_related('attribute')\n"
        " class Container:\n     def initialise(self):\n-        values = self.product.values().select_related('attribute')\n"
        "+        values = self.cache.values()\n         return values\n     def refresh(self):\n"
        "-        values = self.product.values().select_related('attribute')\n+        values = self.cache.values()\n"
        "         return values",
    ),
    # the decorator moved to the class in the same file
    (
        "removed-auth-check",
        "app/views.py",
        "+@method_decorator(login_required, name='dispatch')\n class V(View):\n"
        "-    @method_decorator(login_required)\n     def get(self, request):\n         return 1",
    ),
]
