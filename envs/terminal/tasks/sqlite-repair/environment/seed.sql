-- The shop's database as found: some customers signed up twice (same email, other case).
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    placed_on TEXT NOT NULL,
    amount_cents INTEGER NOT NULL
);
CREATE INDEX orders_customer ON orders(customer_id);
INSERT INTO customers VALUES (1, 'Ann Lee', 'ann.lee@example.com');
INSERT INTO customers VALUES (2, 'Bo Chen', 'bo@example.org');
INSERT INTO customers VALUES (3, 'Cara Diaz', 'cara.diaz@example.com');
INSERT INTO customers VALUES (4, 'Dev Patel', 'dev@patel.net');
INSERT INTO customers VALUES (5, 'Eli Moss', 'eli.moss@example.com');
INSERT INTO customers VALUES (6, 'Fay Wong', 'fay@example.org');
INSERT INTO customers VALUES (7, 'Gus Hart', 'gus.hart@example.com');
INSERT INTO customers VALUES (8, 'Hana Ito', 'hana@ito.jp');
INSERT INTO customers VALUES (9, 'Ivo Novak', 'ivo@example.cz');
INSERT INTO customers VALUES (10, 'Jo Kim', 'jo.kim@example.com');
INSERT INTO customers VALUES (11, 'Kai Berg', 'kai@berg.se');
INSERT INTO customers VALUES (12, 'Lea Roy', 'lea.roy@example.fr');
INSERT INTO customers VALUES (13, 'Ann Lee', 'Ann.Lee@Example.com');
INSERT INTO customers VALUES (14, 'Dev Patel', 'DEV@patel.net');
INSERT INTO customers VALUES (15, 'B. Chen', 'bo@example.org');
INSERT INTO customers VALUES (16, 'Ann  Lee', 'ann.lee@EXAMPLE.COM');
INSERT INTO customers VALUES (17, 'Mia Sol', 'mia@sol.es');
INSERT INTO customers VALUES (18, 'Kai Berg', 'Kai@Berg.SE');
INSERT INTO orders VALUES (105, 2, '2023-09-07', 1427);
INSERT INTO orders VALUES (148, 12, '2024-01-15', 11846);
INSERT INTO orders VALUES (167, 18, '2024-01-15', 1666);
INSERT INTO orders VALUES (108, 8, '2023-11-21', 19302);
INSERT INTO orders VALUES (157, 18, '2024-05-05', 14306);
INSERT INTO orders VALUES (132, 10, '2024-09-16', 11454);
INSERT INTO orders VALUES (117, 4, '2023-10-10', 18557);
INSERT INTO orders VALUES (106, 14, '2023-07-03', 8085);
INSERT INTO orders VALUES (163, 13, '2024-05-15', 1481);
INSERT INTO orders VALUES (161, 13, '2024-04-05', 2918);
INSERT INTO orders VALUES (150, 4, '2024-08-02', 7349);
INSERT INTO orders VALUES (114, 5, '2023-05-14', 4925);
INSERT INTO orders VALUES (142, 3, '2024-02-09', 15734);
INSERT INTO orders VALUES (152, 5, '2024-12-08', 13237);
INSERT INTO orders VALUES (111, 13, '2023-01-08', 1725);
INSERT INTO orders VALUES (147, 15, '2024-05-23', 12840);
INSERT INTO orders VALUES (126, 16, '2024-11-18', 14210);
INSERT INTO orders VALUES (160, 9, '2024-12-14', 11955);
INSERT INTO orders VALUES (129, 8, '2024-03-23', 8197);
INSERT INTO orders VALUES (104, 3, '2023-09-04', 12181);
INSERT INTO orders VALUES (139, 12, '2024-10-16', 19201);
INSERT INTO orders VALUES (154, 16, '2024-02-06', 14917);
INSERT INTO orders VALUES (165, 15, '2024-07-15', 1555);
INSERT INTO orders VALUES (144, 3, '2024-01-24', 23185);
INSERT INTO orders VALUES (107, 18, '2023-07-02', 18727);
INSERT INTO orders VALUES (123, 7, '2024-06-04', 18147);
INSERT INTO orders VALUES (164, 14, '2024-06-15', 1518);
INSERT INTO orders VALUES (137, 18, '2024-10-26', 10479);
INSERT INTO orders VALUES (166, 16, '2024-08-15', 1592);
INSERT INTO orders VALUES (134, 17, '2024-07-06', 11407);
INSERT INTO orders VALUES (128, 15, '2024-10-15', 12047);
INSERT INTO orders VALUES (120, 6, '2023-02-19', 18916);
INSERT INTO orders VALUES (101, 11, '2023-03-13', 21528);
INSERT INTO orders VALUES (135, 16, '2024-07-02', 22095);
INSERT INTO orders VALUES (133, 15, '2024-05-20', 2597);
INSERT INTO orders VALUES (124, 3, '2024-10-02', 20482);
INSERT INTO orders VALUES (162, 5, '2024-04-22', 7844);
