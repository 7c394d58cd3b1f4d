package dbcopytest

import (
	"fmt"
	"time"
)

func unix(s int64) time.Time { return time.Unix(s, 0).UTC() }

// ClinicBudget is the clinic spec's error budget line: the clinic's bad rows are quarantined on
// purpose (14 of them), and the budget lets a migration complete with them. Tests of a
// migration without a budget remove the line.
const ClinicBudget = "error_budget: {max_rows: 50}\n"

// ClinicSpec is the migration spec of the clinic: source is a sqlite path or a postgres DSN.
func ClinicSpec(driver, location string, batchSize int) string {
	src := fmt.Sprintf("{driver: sqlite, path: %q}", location)
	if driver == "postgres" {
		src = fmt.Sprintf("{driver: postgres, dsn: %q}", location)
	}
	return fmt.Sprintf(`name: clinic
version: "2024.1"
batch_size: %d
`+ClinicBudget+`sources:
  legacy: %s
target:
  create_tables: true
entities:
  - name: offices
    source_table: office
    target_table: offices
    key: {source: id}
    columns:
      - {source: id, target: legacy_id, type: bigint}
      - {source: name, type: text, not_null: true}
      - {source: city, type: text}
      - {source: active, type: boolean, default: "1"}
      - {source: created_at, type: timestamptz}
    indexes:
      - {columns: [city]}
  - name: profiles
    source_table: dispatch_user
    target_table: profiles
    key: {source: id}
    incremental: {column: updated_at}
    columns:
      - {source: id, target: legacy_id, type: bigint}
      - {source: email, type: text, not_null: true, unique: true}
      - {target: full_name, expr: "trim(concat(first_name, ' ', last_name))", type: text}
      - {source: is_staff, type: boolean}
      - {source: metadata, type: jsonb}
      - {source: legacy_flag, drop: true}
      - {source: created_at, type: timestamptz}
      - {source: updated_at, type: timestamptz}
      - {target: origin, constant: legacy, type: text}
    validation:
      - {name: email has @, column: email, op: matches, value: "@"}
  - name: doctors
    source_table: doctor
    target_table: doctors
    key: {source: id}
    columns:
      - {source: office_id, references: offices, not_null: true}
      - {source: profile_id, references: profiles}
      - {source: specialty, type: text}
      - {source: rating, type: double precision}
    validation:
      - {column: rating, op: le, value: "5"}
  - name: patients
    source_table: patient
    target_table: patients
    key: {source: id}
    columns:
      - {source: doctor_id, references: doctors, not_null: true}
      - {source: profile_id, references: profiles}
      - {source: name, type: text}
      - {source: birth_date, type: date}
  - name: orders
    source_table: orders
    target_table: orders
    key: {source: id}
    columns:
      - {source: patient_id, references: patients, not_null: true}
      - {source: amount, type: double precision}
      - {source: status, type: text, not_null: true}
      - {source: created_at, type: timestamptz}
    validation:
      - {column: status, op: in, values: [new, paid, shipped, cancelled]}
      - {column: amount, op: ge, value: "0"}
  - name: products
    source_table: product
    target_table: products
    key: {source: id}
    depends_on: [orders]
    columns:
      - {source: sku, type: text}
      - {source: price, type: numeric}
  - name: comments
    source_table: dispatch_comment
    target_table: comments
    key: {source: id}
    columns:
      - {source: author_id, references: profiles}
      - {source: body, type: text}
      - {source: created_at, type: timestamptz}
  - name: jaws
    source_table: jaw
    target_table: jaws
    key: {source: id}
    columns:
      - {source: patient_id, references: patients}
      - {source: order_id, references: orders}
      - {source: side, type: text}
  - name: projects
    source_table: project
    target_table: projects
    key: {source: id}
    columns:
      - {source: name, type: text}
      - {source: settings, type: jsonb}
  - name: treatment_plans
    source_table: treatment_plan
    target_table: treatment_plans
    key: {source: id}
    columns:
      - {source: patient_id, references: patients}
      - {source: plan, type: jsonb}
      - {source: approved, type: boolean}
`, batchSize, src)
}
